"""The report's builders as they were before issue 14 (speed), kept as references: the
faster ones must give the same results. Not collected by pytest (no test_ prefix)."""
from __future__ import annotations

import pandas as pd

from flowscope.report.findings import ip_bytes, meta_mask
from flowscope.report.html import TOP_ENDPOINTS, _check, _join, _km, _n, _names, _text


def endpoint_rows(flows: pd.DataFrame) -> list[dict]:
    """The per-row builder (a Python loop over every endpoint's group of flows)."""
    if flows.empty or "is_meta" not in flows or not flows["is_meta"].notna().any():
        return []
    meta = flows[meta_mask(flows)].assign(ip_bytes=ip_bytes(flows[meta_mask(flows)]))
    key = meta["remote_ip"] if "remote_ip" in meta and meta["remote_ip"].notna().any() else meta["resp_ip"]
    meta = meta.assign(endpoint=key.fillna(meta["resp_ip"]))
    rows = []
    for endpoint, g in meta.groupby("endpoint", sort=True):
        first = g.iloc[0]
        names = sorted({h for h in g["hostname"] if isinstance(h, str) and h})
        rows.append({
            "endpoint": endpoint, "names": _names(names), "services": ", ".join(sorted(set(g["service"].dropna()))),
            "country": _text(first.get("remote_country")), "region": _text(first.get("region")),
            "operator": _join(first.get("operator"), first.get("operator_country")),
            "flows": len(g), "bytes": int(g["ip_bytes"].sum()),
            "bound_km": _km(first.get("max_distance_km")), "check": _check(first.get("geo_consistent")),
        })
    rows.sort(key=lambda r: (-r["bytes"], r["endpoint"]))
    return [{**r, "flows": _n(r["flows"]), "bytes": _n(r["bytes"])} for r in rows[:TOP_ENDPOINTS]]


def png_bytes(fig, dpi: int = 150) -> bytes:
    """The chart PNG through savefig (layout pass, empty draw, real draw)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from flowscope.report.charts import style
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def geo_check_points(flows: pd.DataFrame) -> pd.DataFrame:
    """The RTT chart's points through itertuples over every column."""
    from flowscope.report.charts import CHECK
    cols = ["remote_ip", "source", "country", "distance_km", "bound_km", "verdict"]
    if "geo_checks" not in flows:
        return pd.DataFrame(columns=cols)
    per_ip = flows.dropna(subset=["max_distance_km"]).drop_duplicates("remote_ip").sort_values("remote_ip")
    rows = [(r.remote_ip, m["source"].strip(), m["country"], float(m["km"]), float(r.max_distance_km), m["verdict"])
            for r in per_ip.itertuples() for m in CHECK.finditer(r.geo_checks or "")]
    return pd.DataFrame(rows, columns=cols)


def print_pdf_cli(html_path, pdf_path, analysed_at: str, binary: str | None = None):
    """report.pdf as Chromium's own `--print-to-pdf --no-pdf-header-footer` writes it (one
    browser process a page), dates stamped with the analysis time."""
    import os
    import subprocess
    import tempfile

    from flowscope.report.pdf import _stamp, find_chromium, headless_args
    binary = binary or find_chromium()
    tmp = pdf_path.with_name(pdf_path.name + ".tmp")
    with tempfile.TemporaryDirectory(prefix="flowscope-chromium-") as profile:
        cmd = headless_args(binary, profile) + ["--no-pdf-header-footer", f"--print-to-pdf={tmp}",
                                                html_path.resolve().as_uri()]
        subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "TMPDIR": profile},
                       check=True)
    tmp.write_bytes(_stamp(tmp.read_bytes(), analysed_at))
    os.replace(tmp, pdf_path)
    return pdf_path
