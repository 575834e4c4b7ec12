"""The shipped Grafana dashboard and Prometheus rules name only series the connector exposes.

Every PromQL expression (panel targets, variable queries, alert expressions) is parsed with promql-parser (a
port of Prometheus' own parser: a syntax error fails here, as promtool would), and each vector selector is
looked up in a rendered `/metrics` of a `Metrics` built as `run` builds it: the sample name must exist
(histograms' `_bucket`/`_sum`/`_count` are sample names, so no suffix is guessed), each `label="value"`
matcher must match a sample (label values known in advance are exposed at 0), and `rate`/`increase`/`irate`
only take counters. The rules file is checked for the shape of a Prometheus rule file (promtool is not
available here).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser as promql
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from connector.ops.metrics import Metrics

ROOT = Path(__file__).parents[3]
DASHBOARD = ROOT / "deploy" / "grafana" / "rd-connector.json"
RULES = ROOT / "deploy" / "prometheus" / "rd-connector-rules.yaml"

#: Series Prometheus makes itself, and labels it adds to every scraped sample.
SYNTHETIC = {"up"}
TARGET_LABELS = {"job", "instance"}
#: Grafana's variables, replaced by what a query would get (`$job`, `$account`: "All", i.e. `.*`).
GRAFANA = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$job": ".*", "$account": ".*"}
COUNTER_SUFFIXES = ("_total", "_bucket", "_sum", "_count")
_DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def exposed() -> dict[str, list[dict[str, str]]]:
    """{sample name: [labels of each sample]} of a pipeline's /metrics with two accounts, as `run` wires it."""
    metrics = Metrics()
    metrics.accounts(["default", "south"])
    metrics.watch_ready(lambda: True)
    metrics.watch_rate("default", lambda: 2.0)
    metrics.set_lag("orders", 0, 10)
    metrics.observe_request(200, 0.1, 150_000, 300, 200_000)
    metrics.skipped("drafts")
    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample.labels)
    return samples


SERIES = exposed()


def parse(expr: str) -> promql.Expr:
    for variable, value in sorted(GRAFANA.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    return promql.parse(expr)


def problems(expr: str) -> Iterator[str]:
    """What in `expr` names a series, label value or counter function the connector's /metrics does not have."""
    tree = parse(expr)
    selectors: list[promql.VectorSelector] = []
    counters_only: list[promql.VectorSelector] = []

    def visit(node: promql.Expr) -> bool:
        if isinstance(node, promql.VectorSelector):
            selectors.append(node)
        if isinstance(node, promql.Call) and node.func.name in ("rate", "increase", "irate"):
            argument = node.args[0]
            if isinstance(argument, promql.MatrixSelector):
                counters_only.append(argument.vector_selector)
        return True

    promql.walk(tree, visit)
    assert selectors, f"no series in {expr!r}"
    for selector in selectors:
        name = selector.name or ""
        if name in SYNTHETIC:
            continue
        if name not in SERIES:
            yield f"{name} is not exposed"
            continue
        for matcher in selector.matchers.matchers:
            if matcher.name in TARGET_LABELS or matcher.op != promql.MatchOp.Equal:
                continue
            if not any(labels.get(matcher.name) == matcher.value for labels in SERIES[name]):
                yield f"{name}{{{matcher.name}={matcher.value!r}}} matches no series"
    for selector in counters_only:
        if not (selector.name or "").endswith(COUNTER_SUFFIXES):
            yield f"rate/increase of {selector.name}, which is not a counter"


def test_the_check_catches_what_it_should() -> None:
    assert not list(problems('sum by (le) (rate(rdc_request_fill_ratio_bucket{job=~"$job"}[$__rate_interval]))'))
    assert not list(problems('up{job="rd-connector"} == 0'))
    assert list(problems("rdc_request_fill_ratio_buckets")) == ["rdc_request_fill_ratio_buckets is not exposed"]
    assert list(problems('rdc_retries_total{cause="status_999"}')) == [
        "rdc_retries_total{cause='status_999'} matches no series"
    ]
    assert list(problems("rate(rdc_consumer_lag[5m])")) == ["rate/increase of rdc_consumer_lag, which is not a counter"]
    with pytest.raises(ValueError):
        parse("sum(rate(rdc_events_consumed_total[5m])")


# -- the dashboard -----------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in model["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def dashboard_queries() -> list[str]:
    model = dashboard()
    exprs = [target["expr"] for panel in panels(model) for target in panel.get("targets", [])]
    for variable in model["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.+), *(\w+)\)", variable["definition"])
            assert found, variable["definition"]
            exprs.append(found[1])
    return exprs


@pytest.mark.parametrize("expr", dashboard_queries())
def test_dashboard_queries_name_exposed_series(expr: str) -> None:
    assert not list(problems(expr))


def test_dashboard_shape() -> None:
    model = dashboard()
    assert model["uid"] == "rd-connector" and model["title"]
    variables = {variable["name"]: variable for variable in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["account"]["type"] == "query" and variables["account"]["includeAll"]
    assert re.search(r"label_values\(rdc_\w+\{[^}]*\}, account\)", variables["account"]["definition"])
    ids = [panel["id"] for panel in panels(model)]
    assert len(ids) == len(set(ids))
    titles = {panel["title"] for panel in panels(model)}
    assert {
        "Consumer lag",
        "Events/s delivered",
        "Request fill ratio",
        "Requests to RD by status class",
        "RD 429s by kind",
        "Dead letters by reason",
        "Token refreshes",
        "Resident memory",
        "Oldest unsettled age",
        "Accounts blocked",
    } <= titles
    for panel in panels(model):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["refId"] and target["expr"], panel["title"]
            if "account" in {label for labels in _labels_of(target["expr"]) for label in labels}:
                assert '$account"' in target["expr"], f"{panel['title']}: an account series not filtered by $account"


def _labels_of(expr: str) -> Iterator[set[str]]:
    """The label names of the series each selector of `expr` picks."""
    found: list[set[str]] = []

    def visit(node: promql.Expr) -> bool:
        if isinstance(node, promql.VectorSelector) and node.name in SERIES:
            found.append({label for labels in SERIES[node.name] for label in labels})
        return True

    promql.walk(parse(expr), visit)
    yield from found


# -- the rules -------------------------------------------------------------------------------------------


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text())
    assert set(loaded) == {"groups"}
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_rules_have_the_shape_of_a_prometheus_rule_file() -> None:
    """What promtool's `check rules` checks of the structure (rulefmt): groups with unique names, each rule an
    alert or a record with an expr, durations in Prometheus' syntax, string labels and annotations."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    assert isinstance(groups, list) and groups
    assert len({group["name"] for group in groups}) == len(groups)
    alerts = []
    for group in groups:
        assert set(group) <= {"name", "interval", "limit", "query_offset", "labels", "rules"}, group.keys()
        assert isinstance(group["name"], str) and group["name"]
        assert isinstance(group["rules"], list) and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            name = rule.get("alert") or rule["record"]
            assert _NAME.match(name), name
            alerts.append(name)
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    assert _DURATION.match(rule[key]) and rule[key], f"{name}: {key}={rule[key]!r}"
            for key in ("labels", "annotations"):
                mapping = rule.get(key, {})
                assert isinstance(mapping, dict), f"{name}: {key}"
                for label, text in mapping.items():
                    assert _NAME.match(label) and isinstance(text, str), f"{name}: {key}.{label}"
                    assert text.count("{{") == text.count("}}"), f"{name}: {key}.{label} has unbalanced templates"
            if "alert" in rule:
                assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
                assert {"summary", "description"} <= set(rule["annotations"]), name
    assert len(set(alerts)) == len(alerts)


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: str(rule.get("alert") or rule.get("record")))
def test_rule_expressions_name_exposed_series(rule: dict[str, Any]) -> None:
    assert not list(problems(rule["expr"]))


def test_rules_cover_the_readme_alerts_and_the_issue() -> None:
    """Every series the README's "Useful alerts" names has a rule, and so do the states the issue asked for."""
    readme = (ROOT / "README.md").read_text()
    useful = readme.split("Useful alerts:", 1)[1].split("\n\n", 1)[0]
    in_rules = {name for rule in rules() for name in re.findall(r"\b(?:rdc|process|up)\w*", rule["expr"])}
    assert set(re.findall(r"\brdc_\w+", useful)) <= in_rules
    assert {"rdc_account_blocked", "rdc_token_refreshes_total", "rdc_ready", "up"} <= in_rules
