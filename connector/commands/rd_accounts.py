"""The RD side of `run`, one per account: its HTTP client, token provider, request budget and the fingerprint
its results are stamped with (`Settings.rd_accounts()`: `default` from RDC_RD_*, then `[accounts.<name>]`).

Each account has its own token (refreshed on its own; with the token store, shared with the replicas through
RDC_TOKEN_STORE_TOPIC), its own `RateGate` (its budget is the group's, each member spending its share) and
its own lanes (deliver/lanes.py). `check` builds its token providers here too, so both read the same store.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import partial

import httpx

from connector.config import Secret, Settings
from connector.config.accounts import Account
from connector.errors import ConnectorError
from connector.ledger.scan import rd_destination
from connector.ops.metrics import Metrics
from connector.ops.probe_server import Health
from connector.rd.auth import account_tokens
from connector.rd.bounded_http import bounded_client
from connector.rd.client import RdClient, TokenProvider
from connector.rd.rate import RateGate
from connector.rd.token_store import KafkaTokenStore

__all__ = ["AccountEdge", "account_edges", "destination_of", "token_store_of", "tokens_of"]


@dataclass(frozen=True, slots=True)
class AccountEdge:
    """One RD account as `run` uses it."""

    account: Account
    client: RdClient
    gate: RateGate
    destination: str  # `rd_destination` of the account: the results' writer_destination

    @property
    def name(self) -> str:
        return self.account.name


def destination_of(account: Account) -> str:
    """The RD destination results to `account` are stamped with: from the credentials `tokens_of` uses."""
    if account.refresh_flow:
        assert account.refresh_token is not None
        return rd_destination(account.base_url, account.refresh_token.reveal(), account.client_id)
    assert account.access_token is not None  # Account.require checked it
    return rd_destination(account.base_url, account.access_token.reveal())


def tokens_of(
    account: Account,
    http: httpx.Client,
    *,
    metrics: Metrics | None,
    health: Health | None,
    timeout_s: float,
    store: KafkaTokenStore | None = None,
    store_key: Secret | None = None,
) -> TokenProvider:
    """The account's token provider: the refresh flow when its three credentials are there (they win; its
    tokens shared through `store` when given), else the static token."""
    return account_tokens(
        account,
        http,
        store=store,
        passphrase=store_key,
        on_refresh=partial(_refreshed, metrics, health, account.name),
        on_adopt=partial(_adopted, metrics, health, account.name),
        timeout_s=timeout_s,
    )


def token_store_of(settings: Settings, *, timeout_s: float = 15.0) -> KafkaTokenStore | None:
    """The token store replicas share (RDC_TOKEN_STORE), its topic created if missing (within `timeout_s`);
    None when it is off or no account uses the refresh flow (a static token has nothing to share). Raises
    `ConnectorError` when the topic cannot be created."""
    if not settings.token_store or not any(account.refresh_flow for account in settings.rd_accounts()):
        return None
    store = KafkaTokenStore(settings.kafka_common(), settings.token_store_topic)
    try:
        store.ensure_topic(timeout_s=timeout_s)
    except ConnectorError:
        store.close()
        raise
    return store


def _refreshed(metrics: Metrics | None, health: Health | None, account: str, ok: bool) -> None:
    if metrics is not None:
        metrics.token_refreshed(ok, account)
    if health is not None:
        health.set_token_valid(ok, account)


def _adopted(metrics: Metrics | None, health: Health | None, account: str) -> None:
    """A valid token another replica (or `check`) got was taken from the token store: no refresh."""
    if metrics is not None:
        metrics.token_adopted(account)
    if health is not None:
        health.set_token_valid(True, account)


def account_edges(
    settings: Settings, metrics: Metrics, health: Health, closing: contextlib.ExitStack | None
) -> list[AccountEdge]:
    """Every configured RD account, wired. `closing` gets each HTTP client's close (and the token store's)."""
    edges = []
    store = token_store_of(settings)
    if store is not None and closing is not None:
        closing.callback(store.close)
    for account in settings.rd_accounts():
        http = bounded_client(settings.http_timeout_s, settings.max_in_flight + 2, account.base_url)
        tokens = tokens_of(
            account,
            http,
            metrics=metrics,
            health=health,
            timeout_s=settings.http_timeout_s,
            store=store,
            store_key=settings.token_store_key,
        )
        client = RdClient(
            account.base_url, tokens, http, timeout_s=settings.http_timeout_s, max_events=settings.batch_max_events
        )
        if closing is not None:
            closing.callback(client.close)  # closes `http`, which the token refresh shares
        gate = RateGate(account.requests_per_minute, account=account.name)
        metrics.watch_rate(account.name, partial(_rate_of, gate))
        edges.append(AccountEdge(account, client, gate, destination_of(account)))
    metrics.accounts([edge.name for edge in edges])
    return edges


def _rate_of(gate: RateGate) -> float:
    return gate.rate_per_s
