"""The drift report of ``poisonguard monitor``: the alerts first, then every feature's drift, the multivariate
check, label and prediction drift, and the trigger watch."""

from __future__ import annotations

from typing import Any

from . import html as h


def render(result: dict[str, Any], *, title: str | None = None) -> str:
    drift = result.get("drift") or {}
    watch = result.get("watch") or {}
    alerts = result.get("alerts") or []
    subtitle = f"{drift.get('n_current', '?'):,} new rows against {drift.get('n_reference', '?'):,} reference rows"
    parts = [_alerts(alerts), _features(drift), _overall(drift), _watch(watch)]
    return h.page(title or "poisonguard drift report", subtitle, "".join(parts))


def _alerts(alerts: list[dict[str, Any]]) -> str:
    verdict = "fail" if alerts else "pass"
    if alerts:
        items = "".join(
            f"<li><strong>{h.esc(a.get('severity'))}</strong> {h.esc(a.get('kind'))} ({h.esc(a.get('subject'))}): "
            f"{h.esc(a.get('message'))}</li>"
            for a in alerts
        )
        body = f"<ul class='evidence' id='alerts'>{items}</ul>"
        words = "Something changed enough to act on: each alert below passed both a significance test and an effect-size threshold."
    else:
        body = ""
        words = (
            "No alert: no feature, prediction or label moved by a large enough effect, and no trigger or "
            "prediction-changing outlier showed up more often than in the reference."
        )
    head = f"<div class='verdict'><span class='badge {verdict}' id='verdict'>{len(alerts)} alert(s)</span></div>"
    return h.section("Alerts", head + f"<p>{h.esc(words)}</p>" + body, id="summary")


def _features(drift: dict[str, Any]) -> str:
    feats = drift.get("features") or []
    if not feats:
        return ""
    rows = []
    for f in feats:
        effect = f.get("wasserstein") if f.get("kind") == "numeric" else f.get("js")
        rows.append(
            [
                f.get("column"),
                f.get("kind"),
                (h.num(f.get("psi")), f.get("psi")),
                (h.num(effect), effect),
                f.get("test"),
                (f"{float(f.get('pvalue') or 1):.2g}", f.get("pvalue")),
                "yes" if f.get("drifted") else "no",
            ]
        )
    table = h.table(
        ["feature", "type", "PSI", "Wasserstein (sd) / JS", "test", "p-value", "drifted"],
        rows,
        id="features-table",
        numeric=[False, False, True, True, False, True, False],
    )
    return h.section(
        "Drift per feature",
        h.searchable(table, "features-table", "filter features"),
        help="A feature drifts when its change is both significant (after correction for the number of features) "
        "and large: PSI or Wasserstein distance for numbers, Jensen-Shannon distance for categories. A large batch "
        "of unchanged data is significant everywhere and large nowhere, so it raises nothing.",
        id="features",
    )


def _overall(drift: dict[str, Any]) -> str:
    items: dict[str, Any] = {}
    mv = drift.get("multivariate") or {}
    if mv:
        items["multivariate (domain classifier AUC)"] = (
            f"{h.num(mv.get('auc'))} (p = {float(mv.get('pvalue') or 1):.2g})"
        )
    for key in ("label", "prediction"):
        block = drift.get(key) or {}
        if block:
            items[f"{key} drift"] = ", ".join(f"{k} {h.num(v)}" for k, v in block.items() if isinstance(v, int | float))
    perf = drift.get("performance") or {}
    if perf:
        items["performance"] = ", ".join(f"{k} {h.num(v)}" for k, v in perf.items() if isinstance(v, int | float))
    if not items:
        return ""
    return h.section("Whole-batch checks", h.settings_list(items), id="overall")


def _watch(watch: dict[str, Any]) -> str:
    if not watch:
        return h.section(
            "Trigger watch", "<p>No triggers or model were given (monitor --triggers, --model).</p>", id="watch"
        )
    rows = [
        [
            t.get("description") or t.get("trigger") or str(t.get("conditions")),
            (h.num(t.get("hits")), t.get("hits")),
            (h.pct(t.get("rate"), 3), t.get("rate")),
        ]
        for t in watch.get("triggers") or []
    ]
    body = (
        h.table(
            ["trigger", "rows carrying it", "share of the batch"], rows, id="watch-table", numeric=[False, True, True]
        )
        if rows
        else ""
    )
    cf = watch.get("counterfactual") or {}
    if cf:
        body += h.settings_list({k: v for k, v in cf.items() if isinstance(v, int | float | str)})
    return h.section(
        "Trigger watch",
        body or "<p>No trigger hits.</p>",
        help="Rows that carry a trigger the scan discovered, and rows whose prediction flips when their unusual "
        "values are reset to typical ones: a targeted attack can use a fraction of a percent of the traffic.",
        id="watch",
    )
