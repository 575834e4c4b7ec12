"""What happens after RD answers: results, dead letters, offsets, and the commit."""
