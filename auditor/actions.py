"""What ops should do this morning: the ranked actions table (pure, vectorised).

The findings table says what is wrong; this table says what to *do*, once per root cause.
:func:`build_actions` folds tonight's findings into one row per **company × root cause**:

* a finding that covers others (see :func:`auditor.engine.apply_coverage`: ``needs-relink``
  covers the ``stale`` and ``token-expiry-risk`` findings of its connection) is the root cause
  of what it covers; the data types it explains are listed with it (``AuditResult.covered``);
* the findings of one company that belong to a ``provider-incident`` are one row per company ×
  platform (wait for the outage), not one per data type;
* the other findings of one company, connection and rule are one row (ten ``stale`` types of
  one company are one "queue a refresh" with ten data types listed), so one company never
  fills the list.

Each row has **one** action (``action``, see :data:`ACTIONS`) and its sentence
(``action_text``): send the relink link (only an https Codat link, :mod:`auditor.links`), wait
for the provider incident, contact Codat support with the pull operation id (the data type's
``latestSyncId``), queue a refresh, or say how the refresh queued last night went (worked,
failed: contact support, still running), from :func:`auditor.remediation.refresh_outcomes`.
Snoozed findings never count.

Rows are ranked (``rank`` 1 = first): errors before warnings, new or regressed before
ongoing, then impact (data types, companies, findings explained), then the oldest incident,
then company name. :func:`relinks_frame` gives ``relinks.csv`` (the outreach list).

Columns, in order (:data:`ACTION_COLUMNS`)
-------------------------------------------
``rank``             1-based rank, 1 = do it first
``severity``         ``error`` or ``warning`` (the worst of the row's findings)
``state``            ``new`` / ``regressed`` / ``ongoing`` (new or regressed if any finding is)
``company_id``       Codat company id (null for a fleet-wide row)
``company_name``     company name as Codat has it
``platform``         platform of the connection concerned
``connection_id``    connection concerned (null when not one connection)
``rule``             the root cause's rule (``provider-incident`` for an outage)
``code``             its stable code (``FA301``)
``action``           one of :data:`ACTIONS`
``action_text``      the action in one sentence (plain text)
``link_url``         the connection's linkUrl for a relink: an https Codat link, else null
``pull_operation_id`` the pull operation to quote to Codat support (``latestSyncId``, else the
                     failed refresh's ``dataset_id``), or null
``refresh_result``   how last night's refresh of these types went: ``worked`` / ``failed`` /
                     ``running`` / ``unknown``, null when none was queued
``data_types``       the data types (or groups) the row covers, comma-separated, sorted
``data_type_count``  how many
``companies``        companies concerned (more than 1 only for a fleet-wide row)
``findings``         findings the row stands for (its own plus those its root cause explains)
``first_seen``       UTC time the oldest of its incidents was first seen
``nights_open``      the longest any of its incidents has been open
``message``          the root finding's message (what is wrong)
``remedy``           the root finding's remedy (the rule's full advice)
``root_key``         stable key of the row: rule + company + connection (or incident key)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
import pandas as pd

from auditor.findings import FINDINGS_COLUMNS
from auditor.links import DEFAULT_LINK_HOSTS, safe_links
from auditor.result import AuditResult
from auditor.rules import RULES, Rule
from auditor.vectors import isin, text

__all__ = [
    "ACTIONS",
    "ACTION_COLUMNS",
    "RELINK_COLUMNS",
    "Action",
    "build_actions",
    "empty_actions",
    "relinks_frame",
]

Action = Literal[
    "relink", "wait", "contact-support", "queue-refresh", "refresh-worked", "refresh-running",
    "follow-remedy",
]  # fmt: skip
#: Every value of ``action``, in no particular order.
ACTIONS: Final[tuple[Action, ...]] = (
    "relink",
    "wait",
    "contact-support",
    "queue-refresh",
    "refresh-worked",
    "refresh-running",
    "follow-remedy",
)

ACTION_COLUMNS: Final[tuple[str, ...]] = (
    "rank",
    "severity",
    "state",
    "company_id",
    "company_name",
    "platform",
    "connection_id",
    "rule",
    "code",
    "action",
    "action_text",
    "link_url",
    "pull_operation_id",
    "refresh_result",
    "data_types",
    "data_type_count",
    "companies",
    "findings",
    "first_seen",
    "nights_open",
    "message",
    "remedy",
    "root_key",
)

#: Columns of ``relinks.csv``: one row per connection the customer must re-authorise.
RELINK_COLUMNS: Final[tuple[str, ...]] = (
    "company_id",
    "company_name",
    "connection_id",
    "platform",
    "since",
    "error",
    "link_url",
    "rule",
    "severity",
    "state",
)

#: Root-cause rules whose one action is to send the customer the connection's link.
RELINK_RULES: Final[frozenset[str]] = frozenset({"needs-relink", "never-linked"})
#: Rules a refresh fixes (what ``auditor refresh`` queues, and what a sync clears).
REFRESH_RULES: Final[frozenset[str]] = frozenset(
    {"stale", "failed-after-success", "cross-type-skew", "never-synced", "token-expiry-risk"}
)
#: Rules only Codat support can move: quote the pull operation.
SUPPORT_RULES: Final[frozenset[str]] = frozenset(
    {"stuck-sync", "first-sync-failed", "unknown-status"}
)
#: Statuses Codat retries on its own: the action is to wait, not to queue.
_WAIT_STATUSES: Final[tuple[str, ...]] = ("RateLimitError",)
_SEVERITY_RANK: Final[dict[str, int]] = {"error": 0, "warning": 1}
_STATE_RANK: Final[dict[str, int]] = {"new": 0, "regressed": 0, "ongoing": 1}
_STATES: Final[tuple[str, ...]] = ("new", "ongoing")
_REFRESH_RANK: Final[dict[str, int]] = {"failed": 0, "running": 1, "unknown": 2, "worked": 3}
_EXPLAINS = r"\s*This also explains .*$"


def empty_actions() -> pd.DataFrame:
    """An empty actions table with :data:`ACTION_COLUMNS`."""
    return pd.DataFrame({c: pd.Series([], dtype=_dtype(c)) for c in ACTION_COLUMNS})


def _dtype(column: str) -> str:
    if column in {"rank", "data_type_count", "companies", "findings", "nights_open"}:
        return "Int64"
    if column == "first_seen":
        return "datetime64[ns, UTC]"
    return "string"


def _closure(rules: Sequence[Rule]) -> dict[str, frozenset[str]]:
    """For each rule, the rules that cover it directly or through a chain."""
    direct = {r.name: set(r.covered_by) for r in rules}
    out: dict[str, frozenset[str]] = {}

    def reach(name: str, seen: frozenset[str] = frozenset()) -> frozenset[str]:
        found: set[str] = set()
        for other in direct.get(name, set()) - seen:
            found |= {other} | reach(other, seen | {name})
        return frozenset(found)

    for name in direct:
        out[name] = reach(name)
    return out


def _credit_covered(
    covered: pd.DataFrame, roots: pd.DataFrame, rules: Sequence[Rule]
) -> pd.DataFrame:
    """``covered`` rows with the ``root_key`` of the shown finding that explains each
    (same company and connection; same data type, or a connection-level root); rows whose
    root is not among ``roots`` (snoozed, or not shown) are dropped."""
    if covered.empty or roots.empty:
        return covered.iloc[:0].assign(root_key=pd.Series([], dtype="string"))
    closure = _closure(rules)
    pairs = [(t, c) for t, cs in closure.items() for c in cs]
    if not pairs:
        return covered.iloc[:0].assign(root_key=pd.Series([], dtype="string"))
    allowed = pd.DataFrame(pairs, columns=["rule", "root_rule"]).astype("string")
    left = pd.DataFrame(
        {
            "i": np.arange(len(covered)),
            "company_id": text(covered["company_id"], ""),
            "connection_id": text(covered["connection_id"], ""),
            "data_type": text(covered["data_type"], ""),
            "rule": text(covered["rule"], ""),
        }
    )
    right = pd.DataFrame(
        {
            "company_id": text(roots["company_id"], ""),
            "connection_id": text(roots["connection_id"], ""),
            "root_type": text(roots["data_type"], ""),
            "root_rule": text(roots["rule"], ""),
            "root_key": roots["root_key"].astype("string").to_numpy(),
        }
    )
    joined = left.merge(right, on=["company_id", "connection_id"]).merge(
        allowed, on=["rule", "root_rule"]
    )
    ok = joined["root_type"].eq("") | joined["root_type"].eq(joined["data_type"])
    joined = joined.loc[ok.to_numpy(dtype=bool)].drop_duplicates("i")
    out = covered.iloc[joined["i"].to_numpy()].reset_index(drop=True)
    return out.assign(root_key=joined["root_key"].to_numpy())


def _root_keys(active: pd.DataFrame) -> pd.Series:
    """The root-cause key of each shown finding (see the module docstring)."""
    rule = text(active["rule"], "")
    company = text(active["company_id"])
    incident = text(active["provider_incident"])
    is_outage = rule.eq("provider-incident").to_numpy(dtype=bool)
    outages = text(active["incident_key"]).where(is_outage)
    in_outage = incident.isin(outages.dropna().unique()).fillna(False).to_numpy(dtype=bool)
    by_company = "rule|" + rule + "|" + company.fillna("") + "|" + text(
        active["connection_id"], ""
    )
    fleet = "fleet|" + rule + "|" + text(active["incident_key"], "")
    key = by_company.where(company.notna(), fleet)
    # One row per platform outage: its provider-incident findings and every member finding.
    return key.where(~(is_outage | in_outage), "outage|" + text(active["platform"], ""))


def _lists(keys: pd.Series, values: pd.Series) -> pd.DataFrame:
    """Per key: the distinct non-empty values sorted and comma-joined, and their count."""
    frame = pd.DataFrame({"k": keys.astype("string").to_numpy(),
                          "v": values.astype("string").to_numpy()}).dropna()
    frame = frame.loc[frame["v"].ne("").to_numpy(dtype=bool)]
    if frame.empty:
        return pd.DataFrame({"data_types": pd.Series([], dtype="string"),
                             "data_type_count": pd.Series([], dtype="int64")})
    # Integer codes sort and dedupe fast; the strings are joined per group in C (reduceat).
    k_codes, k_uniques = pd.factorize(frame["k"], sort=False)
    v_codes, v_uniques = pd.factorize(frame["v"], sort=True)
    pairs = np.unique(np.stack([k_codes, v_codes], axis=1), axis=0)  # sorted by key, then value
    starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
    names = (pd.Index(v_uniques).astype(str) + ", ").to_numpy(dtype=object)[pairs[:, 1]]
    joined = pd.Series(np.add.reduceat(names, starts), dtype="string").str.removesuffix(", ")
    return pd.DataFrame(
        {
            "data_types": joined.to_numpy(),
            "data_type_count": np.diff(np.r_[starts, len(pairs)]),
        },
        index=pd.Index(np.asarray(k_uniques)[pairs[starts, 0]]),
    )


def _first_of(frame: pd.DataFrame, column: str, keys: pd.Index) -> pd.Series:
    """Per key: the first non-null value of ``column`` (rows are already worst first)."""
    values = frame[["root_key", column]].dropna(subset=[column])
    first = values.drop_duplicates("root_key").set_index("root_key")[column]
    return first.reindex(keys)


def build_actions(
    result: AuditResult,
    *,
    connections: pd.DataFrame | None = None,
    status: pd.DataFrame | None = None,
    refreshes: pd.DataFrame | None = None,
    link_hosts: Sequence[str] = DEFAULT_LINK_HOSTS,
    rules: Sequence[Rule] = RULES,
) -> pd.DataFrame:
    """The ranked actions table of ``result`` (:data:`ACTION_COLUMNS`; see module docstring).

    ``connections``: the snapshot's ``companies`` frame (``link_url``, ``connection_error``),
    for the relink links; ``status``: the snapshot's ``status`` frame (``latest_sync_id``), for
    the pull operation ids; ``refreshes``: :func:`auditor.remediation.refresh_outcomes` of the
    refreshes queued after the previous audit. Each may be None (the row then says less).
    ``link_hosts``: hosts whose https links may be sent (``[rules.needs-relink] link_hosts``).
    """
    findings = result.findings.reindex(columns=list(FINDINGS_COLUMNS))
    active = findings.loc[~findings["snoozed"].fillna(False).astype(bool).to_numpy()]
    if active.empty:
        return empty_actions()
    active = active.reset_index(drop=True)
    active = active.assign(
        root_key=_root_keys(active).to_numpy(),
        _sev=text(active["severity"]).map(_SEVERITY_RANK).fillna(2).astype("int64").to_numpy(),
        _state=text(active["state"]).map(_STATE_RANK).fillna(1).astype("int64").to_numpy(),
        _type=text(active["group"]).fillna(text(active["data_type"])).to_numpy(),
    )
    # Worst first inside each root cause: its first row is the one that speaks for it.
    root_rank = text(active["rule"]).eq("provider-incident").astype("int64")
    active = active.assign(_root=-root_rank.to_numpy()).sort_values(
        ["root_key", "_root", "_sev", "_state"], kind="stable"
    )
    covered = getattr(result, "covered", None)
    credited = (
        _credit_covered(covered.reindex(columns=list(FINDINGS_COLUMNS)), active, rules)
        if covered is not None and not covered.empty
        else active.iloc[:0][["root_key"]]
    )
    head = active.drop_duplicates("root_key").set_index("root_key")
    keys = head.index
    grouped = active.groupby("root_key", sort=False)
    sev = grouped["_sev"].min().reindex(keys)
    state = grouped["_state"].min().reindex(keys)
    outage = keys.str.startswith("outage")
    member_rows = active.loc[~text(active["rule"]).eq("provider-incident").to_numpy()]
    companies = member_rows.groupby("root_key", sort=False)["company_id"].nunique()
    companies = companies.reindex(keys).fillna(0).astype("int64")
    type_keys = pd.concat(
        [active["root_key"], credited["root_key"]], ignore_index=True
    ).astype("string")
    type_values = pd.concat(
        [
            active["_type"].astype("string"),
            text(credited["data_type"]) if len(credited) else pd.Series([], dtype="string"),
        ],
        ignore_index=True,
    )
    lists = _lists(type_keys, type_values).reindex(keys)
    count_own = grouped.size().reindex(keys)
    count_cov = (
        credited.groupby("root_key").size().reindex(keys).fillna(0)
        if len(credited)
        else pd.Series(0, index=keys)
    )
    first_seen = pd.to_datetime(grouped["first_seen"].min().reindex(keys), utc=True)
    nights = grouped["nights_open"].max().reindex(keys)
    rule = text(head["rule"])
    rule = rule.where(~pd.Series(outage, index=keys), "provider-incident")
    code = text(head["code"])
    if outage.any():
        codes = dict(zip(text(active["rule"]), text(active["code"]), strict=True))
        code = code.where(~pd.Series(outage, index=keys), codes.get("provider-incident", "FA501"))
    company_id = text(head["company_id"])
    platform = text(head["platform"])
    connection_id = text(head["connection_id"]).where(~pd.Series(outage, index=keys))
    current = text(head["current_status"])
    message = text(head["message"]).str.replace(_EXPLAINS, "", regex=True)
    link = _links(company_id, connection_id, connections, link_hosts)
    pull_op = _pull_operations(active, status, keys)
    refresh, refresh_op = _refresh_results(active, credited, refreshes, keys)
    # A failed refresh: its own pull operation is the one to quote when the status has none.
    pull_op = pull_op.fillna(refresh_op.where(refresh.eq("failed").fillna(False)))
    action, action_text = _action(rule, current, platform, link, pull_op, refresh,
                                  text(head["remedy"]), outage)
    out = pd.DataFrame(
        {
            "severity": sev.map({0: "error", 1: "warning"}).fillna("warning").astype("string"),
            "state": pd.Series(np.where(state.to_numpy() == 0, "new", "ongoing"),
                               index=keys, dtype="string"),
            "company_id": company_id.where(~pd.Series(outage, index=keys) | company_id.notna()),
            "company_name": text(head["company_name"]),
            "platform": platform,
            "connection_id": connection_id,
            "rule": rule,
            "code": code,
            "action": action,
            "action_text": action_text,
            "link_url": link.where(action.eq("relink")),
            "pull_operation_id": pull_op.where(action.eq("contact-support")),
            "refresh_result": refresh,
            "data_types": lists["data_types"].astype("string"),
            "data_type_count": lists["data_type_count"].fillna(0).astype("Int64"),
            "companies": companies.astype("Int64"),
            "findings": (count_own + count_cov).astype("Int64"),
            "first_seen": first_seen,
            "nights_open": pd.to_numeric(nights, errors="coerce").astype("Int64"),
            "message": message,
            "remedy": text(head["remedy"]),
            "root_key": pd.Series(keys, index=keys, dtype="string"),
        },
        index=keys,
    )
    # Regressed stays regressed (it matters: it was fixed once).
    is_regressed = text(active["state"]).eq("regressed").fillna(False).astype(bool)
    regressed = is_regressed.groupby(active["root_key"].to_numpy(), sort=False).any()
    out.loc[regressed.reindex(keys).fillna(False).to_numpy(dtype=bool), "state"] = "regressed"
    return _ranked(out, sev, state)


def _ranked(out: pd.DataFrame, sev: pd.Series, state: pd.Series) -> pd.DataFrame:
    keys = pd.DataFrame(
        {
            "a": sev.to_numpy(),
            "b": state.to_numpy(),
            "c": -out["data_type_count"].fillna(0).astype("int64").to_numpy(),
            "d": -out["companies"].fillna(0).astype("int64").to_numpy(),
            "e": -out["findings"].fillna(0).astype("int64").to_numpy(),
            "f": out["first_seen"].to_numpy(),
            "g": out["company_name"].fillna("").str.lower().to_numpy(),
            "h": out["root_key"].to_numpy(),
        }
    )
    order = keys.sort_values(list("abcdefgh"), kind="stable", na_position="last").index
    ranked = out.iloc[order.to_numpy()].reset_index(drop=True)
    ranked.insert(0, "rank", pd.Series(np.arange(1, len(ranked) + 1), dtype="Int64"))
    return ranked[list(ACTION_COLUMNS)]


def _links(company_id: pd.Series, connection_id: pd.Series, connections: pd.DataFrame | None,
           hosts: Sequence[str]) -> pd.Series:
    """The safe https link of each row's connection (null when unknown or unusable)."""
    if connections is None or connections.empty:
        return pd.Series(pd.NA, index=company_id.index, dtype="string")
    # Only the connections of the companies with an action (not the whole fleet's).
    connections = connections.loc[isin(connections["company_id"], company_id.dropna().unique())]
    conn = pd.DataFrame(
        {
            "company_id": text(connections["company_id"]),
            "connection_id": text(connections["connection_id"]),
            "link": safe_links(connections["link_url"], hosts).to_numpy(),
        }
    ).drop_duplicates(["company_id", "connection_id"])
    rows = pd.DataFrame({"company_id": company_id.to_numpy(),
                         "connection_id": connection_id.to_numpy()})
    hit = rows.merge(conn, on=["company_id", "connection_id"], how="left")
    return pd.Series(hit["link"].to_numpy(), index=company_id.index, dtype="string")


def _pull_operations(active: pd.DataFrame, status: pd.DataFrame | None,
                     keys: pd.Index) -> pd.Series:
    """Per root key: the ``latestSyncId`` of its worst data type that has one."""
    if status is None or status.empty:
        return pd.Series(pd.NA, index=keys, dtype="string")
    status = status.loc[isin(status["company_id"], text(active["company_id"]).dropna().unique())]
    st = pd.DataFrame(
        {
            "company_id": text(status["company_id"]),
            "data_type": text(status["data_type"]),
            "pull_operation_id": text(status["latest_sync_id"]),
        }
    ).dropna().drop_duplicates(["company_id", "data_type"])
    rows = pd.DataFrame(
        {
            "root_key": active["root_key"].to_numpy(),
            "company_id": text(active["company_id"]).to_numpy(),
            "data_type": text(active["data_type"]).to_numpy(),
        }
    )
    hit = rows.merge(st, on=["company_id", "data_type"], how="left", sort=False)
    return _first_of(hit, "pull_operation_id", keys).astype("string")


def _refresh_results(active: pd.DataFrame, credited: pd.DataFrame,
                     refreshes: pd.DataFrame | None,
                     keys: pd.Index) -> tuple[pd.Series, pd.Series]:
    """Per root key: the worst result of last night's refreshes of its data types, and the
    pull operation (``dataset_id``) of that refresh."""
    none = pd.Series(pd.NA, index=keys, dtype="string")
    if refreshes is None or refreshes.empty:
        return none, none
    parts = [active[["root_key", "company_id", "data_type"]]]
    if len(credited):
        parts.append(credited[["root_key", "company_id", "data_type"]])
    rows = pd.concat(
        [p.astype({"company_id": "string", "data_type": "string"}) for p in parts],
        ignore_index=True,
    )
    res = pd.DataFrame(
        {
            "company_id": text(refreshes["company_id"]),
            "data_type": text(refreshes["data_type"]),
            "result": text(refreshes["result"]),
            "dataset_id": text(refreshes["dataset_id"])
            if "dataset_id" in refreshes.columns
            else pd.Series(pd.NA, index=refreshes.index, dtype="string"),
        }
    ).dropna(subset=["company_id", "data_type", "result"])
    res = res.assign(_r=res["result"].map(_REFRESH_RANK).fillna(2).astype("int64"))
    res = res.sort_values("_r", kind="stable").drop_duplicates(["company_id", "data_type"])
    hit = rows.merge(res, on=["company_id", "data_type"], how="inner")
    if hit.empty:
        return none, none
    worst = hit.sort_values("_r", kind="stable").drop_duplicates("root_key").set_index("root_key")
    return (
        worst["result"].reindex(keys).astype("string"),
        worst["dataset_id"].reindex(keys).astype("string"),
    )


def _action(rule: pd.Series, current: pd.Series, platform: pd.Series, link: pd.Series,
            pull_op: pd.Series, refresh: pd.Series, remedy: pd.Series,
            outage: np.ndarray) -> tuple[pd.Series, pd.Series]:
    """(action, action_text) per row."""
    where = platform.fillna("the platform")
    op = pull_op.fillna("")
    quote = ("quote pull operation " + op).where(op.ne(""), "quote the company id")
    relink = rule.isin(list(RELINK_RULES)).fillna(False).to_numpy(bool)
    refreshable = rule.isin(list(REFRESH_RULES)).fillna(False).to_numpy(bool)
    support = rule.isin(list(SUPPORT_RULES)).fillna(False).to_numpy(bool)
    waiting = current.isin(list(_WAIT_STATUSES)).fillna(False).to_numpy(bool)
    res = refresh.fillna("")
    conditions = [
        outage,
        relink,
        waiting & (refreshable | support),
        refreshable & res.eq("failed").to_numpy(bool),
        refreshable & res.eq("running").to_numpy(bool),
        refreshable & res.eq("worked").to_numpy(bool),
        refreshable,
        support,
    ]
    kinds = ["wait", "relink", "wait", "contact-support", "refresh-running", "refresh-worked",
             "queue-refresh", "contact-support"]
    action = pd.Series(np.select(conditions, kinds, default="follow-remedy"), index=rule.index,
                       dtype="string")
    has_link = link.notna().to_numpy(bool)
    texts: list[pd.Series] = [
        "Wait for the provider incident on " + where + " (check its status page and "
        "status.codat.io; raise one ticket with Codat), then queue syncs.",
        ("Send the customer the relink link: " + link.fillna("") + " ; then queue a sync.").where(
            has_link,
            "Ask the customer to relink the connection in your app (no usable https link is "
            "known); then queue a sync.",
        ),
        "Wait: " + where + " is rate-limiting Codat, which retries on its own (do not queue).",
        "The refresh queued last night failed: contact Codat support, " + quote + ".",
        pd.Series(
            "The refresh queued last night is still running: check again after the next audit.",
            index=rule.index,
        ),
        pd.Series(
            "The refresh queued last night worked; the next audit should clear this (queue a "
            "refresh if it does not).",
            index=rule.index,
        ),
        pd.Series("Queue a refresh (auditor refresh --apply).", index=rule.index),
        "Contact Codat support, " + quote + ".",
    ]
    chosen = remedy.fillna("Follow the finding's remedy.").astype("string")
    for cond, sentence in zip(reversed(conditions), reversed(texts), strict=True):
        chosen = sentence.astype("string").where(cond, chosen)
    return action, chosen


def relinks_frame(actions: pd.DataFrame, connections: pd.DataFrame | None = None) -> pd.DataFrame:
    """``relinks.csv``: one row per connection to re-authorise (:data:`RELINK_COLUMNS`), the
    list to mail customers, in the actions' rank order. ``since``: when the incident was first
    seen; ``error``: Codat's newest unresolved error text for the connection (from
    ``connections``); ``link_url``: only an https Codat link, else empty."""
    rows = actions.loc[actions["action"].astype("string").eq("relink").fillna(False).to_numpy()]
    out = pd.DataFrame(
        {
            "company_id": rows["company_id"].astype("string").to_numpy(),
            "company_name": rows["company_name"].astype("string").to_numpy(),
            "connection_id": rows["connection_id"].astype("string").to_numpy(),
            "platform": rows["platform"].astype("string").to_numpy(),
            "since": pd.to_datetime(rows["first_seen"], utc=True).to_numpy(),
            "error": pd.Series(pd.NA, index=range(len(rows)), dtype="string"),
            "link_url": rows["link_url"].astype("string").to_numpy(),
            "rule": rows["rule"].astype("string").to_numpy(),
            "severity": rows["severity"].astype("string").to_numpy(),
            "state": rows["state"].astype("string").to_numpy(),
        }
    )
    out["since"] = pd.to_datetime(out["since"], utc=True)
    if connections is not None and not connections.empty and len(out):
        errors = pd.DataFrame(
            {
                "company_id": text(connections["company_id"]),
                "connection_id": text(connections["connection_id"]),
                "error": text(connections["connection_error"]),
            }
        ).drop_duplicates(["company_id", "connection_id"])
        hit = out[["company_id", "connection_id"]].merge(
            errors, on=["company_id", "connection_id"], how="left"
        )
        out["error"] = hit["error"].astype("string").to_numpy()
    return out[list(RELINK_COLUMNS)]
