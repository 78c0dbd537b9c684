"""What the report's charts must keep: every name whole (what tells two bars or two series apart is often at
its end), the ratio chart's bars named by what differs between them, history titles with the setting that
tells two series apart and whole run numbers, memory bars drawn to the data with their values, every text
inside its chart; an `ab` run's report with A against B per pair, every round, the verdicts and intervals;
and `report RUN` without `-o`.

The runs are real: the `sleep` test engine (a known time per token, so the verdicts do not hang on this
machine's noise) on two synthetic GGUF models whose names differ only at their end. Chromium lays the charts
out, says where each text landed (a script in the test's page, never in the report), and screenshots them.
"""

from __future__ import annotations

import html as _html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from conftest import require
from test_report import CHROMIUM, _png_pixels, charts

from edgebench.cli import main
from edgebench.compare.gate import Comparison
from edgebench.compare.stats import Decision
from edgebench.report.quality import quality_plots
from edgebench.results.aggregate import run_rows

# this shared VM's load must not repeat rounds here
QUIET = ("--max-load", "1000", "--max-steal", "100", "--max-cpu-wait", "100")
SVG = "{http://www.w3.org/2000/svg}"
MODELS = ("qwen3.5-0.8b@Q4_K_M", "qwen3.5-0.8b@Q4_K_S")  # alike for their first 17 characters


def edgebench(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def text_of(element) -> str:
    return "".join(element.itertext())


def classed(chart, name: str) -> list:
    return [e for e in chart.iter() if name in (e.get("class") or "").split()]


def chart_titled(html: str, start: str):
    return next(c for c in charts(html) if c.get("aria-label").startswith(start))


@pytest.fixture(scope="module")
def sleep_runs(tmp_path_factory, tiny_qwen35, tiny_llama):
    """Three runs of two models x two tests x threads 1 and 2, loaded into a database as they go."""
    work = tmp_path_factory.mktemp("charts")
    for source, name in zip((tiny_qwen35, tiny_llama), MODELS):
        shutil.copy(source, work / f"{name}.gguf")
    profile = work / "p.yaml"
    profile.write_text(f"models: [{', '.join(json.dumps(str(work / f'{m}.gguf')) for m in MODELS)}]\n"
                       "tests: [tg20, pp20]\nrepetitions: 2\nwarmup: 0\n"
                       "engine: {name: sleep, simulate_ts: 1000, threads: [1, 2]}\ntelemetry: {interval_s: 0.1}\n")
    db = f"sqlite:///{work / 'runs.sqlite'}"
    for _ in range(3):
        assert main(["run", str(profile), "-o", str(work / "results"), "--db", db]) == 0
    runs = sorted((work / "results").iterdir(), key=lambda p: json.loads((p / "run.json").read_text())["created"])
    out = work / "report.html"
    done = edgebench("report", runs[1], runs[2], "-o", out, "--db", db, cwd=work)
    assert done.returncode == 0, done.stderr
    return work, runs, out.read_text()


def test_model_names_are_drawn_whole(sleep_runs):
    _, _, html = sleep_runs
    speed = chart_titled(html, "tg20: tokens/s per model and device")
    assert sorted(text_of(label) for label in classed(speed, "category")) == sorted(MODELS)
    # a thread sweep: each count its own series, where one of them used to hide the other
    legend = speed.find(f"{SVG}g[@class='legend']")
    assert [text_of(t) for t in legend.iter(f"{SVG}text")] == ["local t1", "local t2"]
    assert len(classed(speed, "series")) == 4


def test_the_ratio_chart_names_each_bar_by_what_differs_and_says_the_rest_once(sleep_runs):
    _, runs, html = sleep_runs
    ratio = chart_titled(html, "t/s ratio candidate / base")
    expected = {f"{m}/{t}/t{n}" for m in MODELS for t in ("tg20", "pp20") for n in (1, 2)}  # threads as set
    labels = [text_of(label) for label in classed(ratio, "category")]
    assert len(labels) == len(set(labels)) == 8 and set(labels) == expected
    assert "every bar: local" in html.split('aria-label="t/s ratio candidate / base')[1].split("</svg>")[1][:300]


def test_history_titles_name_the_threads_and_count_runs_in_whole_numbers(sleep_runs):
    _, _, html = sleep_runs
    history = [c for c in charts(html) if "/ sleep" in c.get("aria-label")]
    assert len(history) == 8  # per model, test and thread count
    titles = [text_of(classed(c, "title")[0]) for c in history]
    assert len(set(titles)) == 8 and all(re.search(r"\(n_threads=[12]\)$", t) for t in titles), titles
    for chart in history:
        ticks = [text_of(t) for t in classed(chart, "x-tick")]
        assert ticks == ["1", "2", "3"], ticks  # three runs, numbered


def test_memory_bars_are_drawn_to_the_data_with_their_values(sleep_runs):
    _, runs, html = sleep_runs
    memory = chart_titled(html, "local: peak memory per model")  # the first run's (runs[1])
    bars = classed(memory, "series")
    assert len(bars) == 2 and all(float(b.get("height")) > 100 for b in bars)  # tens of MiB, not slivers
    peaks = {m: max(r["peak_rss_mib"] for r in run_rows(runs[1]) if r["model"] == m) for m in MODELS}
    assert [text_of(v) for v in classed(memory, "value")] == [f"{peaks[m]:.1f} MiB" for m in sorted(MODELS)]
    assert not classed(memory, "reference") and "device RAM" in text_of(classed(memory, "x-label")[0])


@pytest.fixture(scope="module")
def ab_measured(tmp_path_factory, tiny_qwen35) -> tuple[Path, dict]:
    """An `ab` run of two tests, B at half A's speed: regressed at the look after 9 rounds; and its gate."""
    tmp_path = tmp_path_factory.mktemp("ab")
    profile = tmp_path / "p.yaml"
    profile.write_text(f"models: [{json.dumps(str(tiny_qwen35))}]\ntests: [tg20, pp20]\nwarmup: 0\n"
                       "engine: {name: sleep, simulate_ts: 1000}\ntelemetry: {enabled: false}\n")
    code = main(["ab", str(profile), "--b", "engine.simulate_ts=500", "--rounds", "7", "--max-rounds", "9",
                 "-o", str(tmp_path / "results"), "--json", str(tmp_path / "ab.json"), *QUIET])
    assert code == 1
    (run,) = (tmp_path / "results").iterdir()
    return run, json.loads((tmp_path / "ab.json").read_text())


def round_values(run: Path) -> dict[tuple[str, int], dict[str, float]]:
    """(the pair's cell, round) -> variant -> the t/s of that round's latest attempt, from samples.jsonl."""
    latest: dict[str, tuple[int, float]] = {}
    for line in (run / "samples.jsonl").read_text().splitlines():
        sample = json.loads(line)
        if sample["cell"] not in latest or sample["attempt"] >= latest[sample["cell"]][0]:
            latest[sample["cell"]] = (sample["attempt"], sample["ts"])
    found: dict = {}
    for cell, (_, ts) in latest.items():
        label, rest = cell.split(":", 1)
        found.setdefault((rest, int(label[1:])), {})[label[0]] = ts
    return found


def test_the_report_of_an_ab_run_shows_a_against_b_per_pair_with_rounds_verdicts_and_intervals(tmp_path,
                                                                                             ab_measured):
    run, gate = ab_measured
    done = edgebench("report", run, "-o", tmp_path / "ab.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "ab.html").read_text()
    assert not [c for c in charts(html) if "tokens/s per model and device" in c.get("aria-label")]  # not A1 alone
    assert "engine.simulate_ts: 1000.0 → 500.0" in html
    rows = re.findall(r"<tr>(.*?)</tr>", html)
    for c in gate["comparisons"]:  # the verdicts `ab` gave, each with its interval
        d = c["decision"]
        interval = f"{d['ratio']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"
        assert any(c["label"] in r and f">{c['metric']} (" in r and interval in r and f">{c['verdict']}</td>" in r
                   for r in rows), (c["label"], c["metric"])
    labels = {c["label"] for c in gate["comparisons"]}
    assert len(labels) == 2 and {c["verdict"] for c in gate["comparisons"] if c["metric"] == "ts"} == {"regressed"}
    values = round_values(run)
    for label in labels:
        chart = chart_titled(html, f"{label}: tokens/s of A and B per round")
        legend = [text_of(t) for t in chart.find(f"{SVG}g[@class='legend']").iter(f"{SVG}text")]
        assert legend == ["A (engine.simulate_ts=1000.0)", "B (engine.simulate_ts=500.0)"]
        section = html.split(f"<h4>{_html.escape(label)}</h4>")[1].split('<div class="pair">')[0]
        test = label.split("/")[1].split(" ")[0]
        mine = {r: v for (cell, r), v in values.items() if f"/{test}/" in cell}
        assert len(mine) == 9 and len(chart.findall(f".//{SVG}circle")) == 18
        for number, by in mine.items():
            assert (f"<td>{number}</td><td>{'AB' if number % 2 else 'BA'}</td><td>{by['A']:.2f}</td>"
                    f"<td>{by['B']:.2f}</td>") in section, number
        assert re.search(r"ts: <span class=\"verdict regressed\"[^>]*>regressed</span> <span class=\"note\">"
                         r"B/A 0\.\d{3} \[95% CI 0\.\d{3}, 0\.\d{3}\]", section)


def test_a_verdict_the_gate_adds_later_is_drawn_in_a_colour_of_its_own():
    from edgebench.report.parts import VERDICT_COLOURS, ratio_chart, verdict_cell

    def judged(label: str, verdict: str, ratio: float, low: float, high: float) -> Comparison:
        decision = Decision(verdict, ratio, low, high, 0.001, 9, 9, "because")
        return Comparison(label, "tg20", "ts", "t/s", 0.03, 100.0, 100.0 * ratio, decision, verdict)

    chart = ET.fromstring(re.search(r"<svg .*?</svg>", ratio_chart("ratios", [
        judged("pi/m/tg20/t4", "regressed", 0.8, 0.5, 0.85), judged("pi/m/pp20/t4", "not worse", 0.99, 0.98, 1.0)]),
        re.S).group(0))
    legend = chart.find(f"{SVG}g[@class='legend']")
    assert [text_of(t) for t in legend.iter(f"{SVG}text")] == ["regressed", "not worse"]
    fills = [r.get("fill") for r in classed(chart, "series")]
    assert fills[0] == VERDICT_COLOURS["regressed"] and fills[1] not in VERDICT_COLOURS.values()
    assert text_of(classed(chart, "series")[0]).endswith("0.8 [0.5, 0.85]")  # the interval as it is, not centred
    assert verdict_cell("not worse").startswith('<td class="verdict not-worse"')


def test_report_without_o_writes_into_the_run_and_says_where(tmp_path, ab_measured):
    run = Path(shutil.copytree(ab_measured[0], tmp_path / "run"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = edgebench("report", run, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert (run / "report.html").is_file() and not list(elsewhere.iterdir())
    assert f"wrote {run / 'report.html'}" in done.stdout


# -- in a real browser -----------------------------------------------------------------------------------

MEASURE = """<script>
const found = [];
for (const svg of document.querySelectorAll('svg')) {
  const box = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim());
  const outside = texts.filter(t => { const r = t.getBoundingClientRect();
    return r.left < box.left - 1 || r.top < box.top - 1 || r.right > box.right + 1 || r.bottom > box.bottom + 1;
  }).map(t => t.textContent);
  const kept = texts.filter(t => t.closest('.legend') || ['title', 'category', 'x-label', 'value']
    .some(c => t.classList.contains(c)));
  const overlaps = [];
  kept.forEach((a, i) => kept.slice(i + 1).forEach(b => {
    const p = a.getBoundingClientRect(), q = b.getBoundingClientRect();
    if (p.left < q.right - 1 && q.left < p.right - 1 && p.top < q.bottom - 1 && q.top < p.bottom - 1)
      overlaps.push([a.textContent, b.textContent]);
  }));
  found.push({chart: svg.getAttribute('aria-label'), outside, overlaps});
}
document.body.setAttribute('data-layout', JSON.stringify(found));
</script>"""


def in_browser(markups: list[str], shot: Path) -> list[dict]:
    """The charts one under another in Chromium: a screenshot of them, and where each one's texts landed."""
    require(CHROMIUM is not None, "chromium (apt-get install chromium)")
    page = shot.with_suffix(".html")
    page.write_text(f"<!DOCTYPE html><html><head><style>svg{{display:block}}</style></head>"
                    f"<body style='margin:0'>{''.join(markups)}{MEASURE}</body></html>")
    height = sum(int(re.search(r'height="(\d+)"', m).group(1)) for m in markups)
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--window-size=720,{height}"]
    env = {**os.environ, "HOME": str(shot.parent)}
    subprocess.run([*browser, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120,
                   check=True, env=env)
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True, env=env).stdout
    return json.loads(_html.unescape(re.search(r'data-layout="([^"]*)"', dom).group(1)))


def assert_laid_out(layout: list[dict], count: int) -> None:
    assert len(layout) == count
    for chart in layout:
        assert not chart["outside"], (chart["chart"], chart["outside"])
        assert not chart["overlaps"], (chart["chart"], chart["overlaps"])


def test_in_a_browser_no_text_leaves_its_chart_or_covers_another(sleep_runs, tmp_path):
    _, runs, html = sleep_runs
    markups = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    layout = in_browser(markups, tmp_path / "report.png")
    assert_laid_out(layout, len(markups))
    width, height, rows = _png_pixels(tmp_path / "report.png")
    # the memory chart's bars, in the first series colour, fill a good part of their chart: not slivers
    top = sum(int(re.search(r'height="(\d+)"', m).group(1)) for m in markups[:markups.index(
        next(m for m in markups if 'aria-label="local: peak memory per model"' in m))])
    blue = bytes.fromhex("0072B2")
    memory = rows[top:top + 320]
    assert sum(row[i:i + 3] == blue for row in memory for i in range(0, len(row), 3)) > 20000


def test_in_a_browser_the_quality_legend_and_the_ab_charts_fit(tmp_path, ab_measured):
    run, _ = ab_measured
    assert edgebench("report", run, "-o", tmp_path / "ab.html", cwd=tmp_path).returncode == 0
    markups = re.findall(r"<svg .*?</svg>", (tmp_path / "ab.html").read_text(), flags=re.S)
    # the rows of a quality run (tests/test_quality_run.py makes real ones, with llama-perplexity)
    rows = [row for q, ts, kld, ppl in (("Q4_K_M", 30.0, 0.05, 11.0), ("Q8_0", 18.0, 0.01, 10.5)) for row in (
        {"device": "phone", "model": f"qwen3.5-0.8b@{q}", "test": "tg64", "status": "done", "n_depth": 0,
         "avg_ts": ts, "ppl": None, "kld_mean": None, "n_prompt": 0, "n_gen": 64},
        {"device": "phone", "model": f"qwen3.5-0.8b@{q}", "test": "kld", "status": "done", "n_depth": 0,
         "avg_ts": 500.0, "ppl": ppl, "kld_mean": kld, "n_prompt": 0, "n_gen": 0})]
    (quality, _caption), = quality_plots(rows)
    legend = ET.fromstring(quality).find(f"{SVG}g[@class='legend']")
    assert [text_of(t) for t in legend.iter(f"{SVG}text")] == ["best choices (frontier)", "dominated"]
    layout = in_browser(markups + [quality], tmp_path / "ab.png")
    assert_laid_out(layout, len(markups) + 1)
    assert layout[-1]["chart"] == "phone: quality against speed"
