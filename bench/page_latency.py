"""Slider latency of the Theory pages in a real browser: release an arrow key, wait for new numbers and charts.

    .venv/bin/python bench/page_latency.py                    # 48 timed presses per page
    .venv/bin/python bench/page_latency.py --presses 96 --baseline HEAD~3
    .venv/bin/python bench/page_latency.py --pages Mixture --sliders "Density of class"   # one kind of slider

Starts ``streamlit run streamlit_app.py`` headless and drives Debian's Chromium (``/usr/bin/chromium``)
through Playwright, as ``tests/app/test_browser.py`` does. On each Theory page (Toy model at ``/``, the
Mixture page at ``/mixture`` when the app has one) it focuses a slider thumb and presses an arrow key, as a
keyboard user does; the sliders take turns, each walking one step per turn towards its farther bound, so
every value is new (no cache hit flatters the figure). A press is timed in the page itself, from the key's
``keydown`` event (the slider commits its value on it; ``keyup`` follows at once) to the last frame that
changed the main area: new text, a chart redrawn (as SVG or on a canvas), or Streamlit's script state
returning to ``notRunning``, whichever is last, once nothing has changed for ``--quiet`` ms. A press that makes the app
rerun twice therefore counts both reruns; such presses also get the figure of their first rerun alone, which on the
Mixture page is the time to the exact numbers when the finite-sample study arrives later from the background.
``--baseline REV`` also serves the app as it was at git revision REV (``git archive``) and alternates presses
between the two servers, so both see the same machine load.
Also printed per page: the median CPU time per press of the server and of the browser (Chromium and
Playwright's driver, over the whole press including the quiet wait), which load from other programs does not
inflate the way it inflates wall-clock time; on a 2-core machine both add up to the latency. A slider at its
bound stops rerunning and leaves the rotation. The median and maximum per page are printed last.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app.pages.mixture import PRESETS  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# The 16-D page is the Mixture page with the `gaussians` preset's sliders in its query, as a shared link has them.
PAGES = {"Toy model": "/", "Mixture": "/mixture",
         "Mixture 16-D": "/mixture?" + urllib.parse.urlencode(PRESETS["The `gaussians` dataset"][1])}
# Not pressed: the Mixture page's Layout slider turns the plane into the 16-D layout (or back), which is timed as a
# page of its own; in the rotation it would leave every later press in the other layout.
SKIP = ("Layout",)

# Installed before any page script: timestamps of the main area's DOM changes, canvas draws and script-state
# changes after the bench arms it. Vega draws as SVG (DOM changes) or on a canvas (none, hence the canvas hook).
PROBE = """
(() => {
  const P = window.__lat = {armed: false};
  const main = () => document.querySelector('[data-testid="stMain"]');
  const app = () => document.querySelector('[data-testid="stApp"]');
  P.state = () => app()?.getAttribute('data-test-script-state');
  P.text = () => main()?.textContent ?? '';
  P.arm = () => {
    Object.assign(P, {armed: true, t0: null, last: null, firstLast: null, changedAt: null, startedAt: null,
                      finishedAt: null, runs: 0, before: P.text()});
    return P.state();
  };
  let framePending = false;   // one animation-frame callback per frame, however many draw calls (cheap probe)
  const touch = () => {
    if (!P.armed || P.t0 === null) return;
    P.last = performance.now();
    if (framePending) return;
    framePending = true;
    requestAnimationFrame(() => { framePending = false; P.last = Math.max(P.last, performance.now()); });
  };
  document.addEventListener('keydown', e => { if (P.armed && P.t0 === null) P.t0 = e.timeStamp; }, true);
  for (const name of ['clearRect', 'fillRect', 'stroke', 'fill', 'drawImage']) {
    const original = CanvasRenderingContext2D.prototype[name];
    CanvasRenderingContext2D.prototype[name] = function (...args) { touch(); return original.apply(this, args); };
  }
  new MutationObserver(records => {
    if (!P.armed || P.t0 === null) return;
    const m = main();
    let relevant = false;
    for (const r of records) {
      if (r.target === app() && r.attributeName === 'data-test-script-state') {
        relevant = true;
        if (P.state() === 'running') {
          if (P.runs === 1 && P.finishedAt !== null) P.firstLast = P.last;   // the first rerun's last change
          P.runs += 1; P.startedAt ??= performance.now();
        }
        if (P.state() === 'notRunning') P.finishedAt = performance.now();
      } else if (m && m.contains(r.target)) {
        relevant = true;
      }
    }
    if (!relevant) return;
    touch();
    if (P.changedAt === null && P.text() !== P.before) P.changedAt = performance.now();
  }).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
  // settled: the rerun the press started is over and nothing has changed for `quiet` ms since
  P.settled = (quiet) => P.t0 !== null && P.state() === 'notRunning' && P.last !== null
    && performance.now() - P.last >= quiet;
  P.result = () => ({ms: P.last === null ? null : P.last - P.t0, changed: P.changedAt !== null, runs: P.runs,
                     first: (P.firstLast ?? P.last) - P.t0,
                     started: P.startedAt - P.t0, text: P.changedAt - P.t0, finished: P.finishedAt - P.t0});
})();
"""


def cpu_ms(roots: list[int]) -> float:
    """CPU time (user + system, ms) used so far by the processes ``roots`` and all their descendants (Linux /proc)."""
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(stat.parent.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))   # ppid, utime + stime
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, list(roots)
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0))[1]
        todo.extend(children.get(pid, []))
    return 1000.0 * total / os.sysconf("SC_CLK_TCK")


def child_pids(parent: int) -> list[int]:
    """The direct children of process ``parent``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                out.append(int(stat.parent.name))
        except OSError:
            continue
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def serve(tree: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """``streamlit run`` the app in ``tree`` on a free port; returns the process and its URL once healthy."""
    port = free_port()
    env = {**os.environ, "DROP_STORE": str(log.parent / "runs.sqlite"), "DROP_CACHE": str(log.parent / "cache"),
           "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
             "--server.headless", "true", "--server.address", "localhost", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"streamlit did not answer at {url} within 90 s")




@dataclass
class Target:
    """One page of one server, open in its own browser tab, with its sliders' walking directions."""

    name: str
    page: object
    sliders: list = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    presses: list[dict] = field(default_factory=list)
    server: int = 0          # pid of the streamlit process serving this page


THUMB = '[data-testid="stSlider"] input[type="range"]'   # a slider thumb's focusable input
# Sliders in a collapsed expander cannot take the focus: a key pressed "on" one would move the slider focused before.
OPEN_EXPANDERS = """() => document.querySelectorAll('[data-testid="stExpander"] details:not([open]) > summary')
  .forEach(s => s.click())"""
CHARTS_DRAWN = """() => window.__lat && window.__lat.state() === 'notRunning'
  && document.querySelectorAll('[data-testid="stMain"] .vega-embed :is(svg, canvas)').length > 0"""


def open_target(browser, name: str, url: str, path: str, server: int, only: str = "") -> Target | None:
    """The page at ``path`` in a new tab, once its charts are drawn; None if the app has no such page.

    Only the sliders whose label starts with ``only`` are pressed (all of them by default but :data:`SKIP`)."""
    page = browser.new_page(viewport={"width": 1400, "height": 3200})
    page.set_default_timeout(90_000)
    page.add_init_script(PROBE)
    page.goto(url + path)
    page.wait_for_function("() => document.querySelector('[data-testid=\"stSidebarNav\"] a')")
    links = page.eval_on_selector_all('[data-testid="stSidebarNav"] a', "links => links.map(a => a.pathname)")
    if path != "/" and path.split("?")[0] not in links:      # Streamlit would show the default page instead
        page.close()
        return None
    page.wait_for_function(CHARTS_DRAWN)
    page.evaluate(OPEN_EXPANDERS)
    page.wait_for_timeout(1500)
    thumbs = page.locator(THUMB)
    target = Target(name, page, server=server)
    for i in range(thumbs.count()):
        label = thumbs.nth(i).get_attribute("aria-label") or ""
        if not label.startswith(only) or label.startswith(SKIP):
            continue
        # found by its label, not its position: a change of K adds sliders above others and would shift positions
        thumb = page.locator(f"{THUMB}[aria-label={json.dumps(label, ensure_ascii=False)}]")
        lo, hi = (float(thumb.get_attribute(a)) for a in ("min", "max"))
        now = float(thumb.input_value())
        target.sliders.append(thumb)
        target.keys.append("ArrowRight" if hi - now >= now - lo else "ArrowLeft")
        target.labels.append(label)
    if not target.sliders:
        raise RuntimeError(f"{name}: no slider{f' labelled {only!r}...' if only else ''} found at {url}")
    return target


def press(target: Target, i: int, quiet_ms: int, browser_pids: list[int]) -> dict | None:
    """Press the arrow key on slider ``i`` (round robin) and wait until the page has settled; the timing.

    Also the CPU time the server and the browser spent meanwhile (the load-independent part of the figure).
    None if the value did not move (the slider is at its bound), or if the slider is gone (a lower K removed it):
    such a press starts no rerun.
    """
    k = i % len(target.sliders)
    thumb = target.sliders[k]
    if thumb.count() == 0:
        return None
    if not thumb.is_visible():            # an app rerun (a change of K) can collapse an expander again
        target.page.evaluate(OPEN_EXPANDERS)
    thumb.focus()
    before = thumb.input_value()
    target.page.evaluate("() => window.__lat.arm()")
    server, browser = cpu_ms([target.server]), cpu_ms(browser_pids)
    thumb.press(target.keys[k])
    try:    # the thumb shows its new value once React has rendered it
        target.page.wait_for_function("([el, v]) => el.value !== v", arg=[thumb.element_handle(), before],
                                      polling=10, timeout=1000)
    except PlaywrightTimeout:
        return None
    target.page.wait_for_function(f"() => window.__lat.settled({quiet_ms})", polling=50, timeout=120_000)
    result = target.page.evaluate("() => window.__lat.result()")
    result["server_cpu"], result["browser_cpu"] = cpu_ms([target.server]) - server, cpu_ms(browser_pids) - browser
    result["slider"] = thumb.get_attribute("aria-label")
    return result


def run_presses(targets: list[Target], presses: int, quiet_ms: int, browser_pids: list[int]) -> None:
    """3 warm-up presses, then ``presses`` timed ones per target, alternating between the targets.

    A slider whose press does not move its value (at its bound), or that is gone, leaves the rotation and is named.
    """
    i = 0
    while min(len(t.presses) for t in targets) < presses:
        for target in targets:
            result = press(target, i, quiet_ms, browser_pids)
            if result is None:
                k = i % len(target.sliders)
                why = "is at its bound" if target.sliders[k].count() else "is gone (a lower K removed it)"
                print(f"# {target.name}: slider '{target.labels[k]}' {why}; dropped", flush=True)
                del target.sliders[k], target.keys[k], target.labels[k]
                if not target.sliders:
                    raise RuntimeError(f"{target.name}: no slider reruns the page")
            elif i >= 3:
                target.presses.append(result)
        i += 1


def summary(name: str, presses: list[dict]) -> str:
    """Median and maximum until settled; where a press reran more than once (the Mixture page's background study
    arriving, or a bug on the Toy model page), also the same figures for the first rerun alone."""
    ms = [p["ms"] for p in presses]
    changed = sum(p["changed"] for p in presses)
    double = sum(p["runs"] > 1 for p in presses)
    cpu = {k: statistics.median(p[k] for p in presses) for k in ("server_cpu", "browser_cpu")}
    first = [p["first"] for p in presses]
    line = (f"{name}: median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms over {len(ms)} presses "
            f"(p90 {sorted(ms)[int(0.9 * (len(ms) - 1))]:.0f} ms; median CPU per press: server "
            f"{cpu['server_cpu']:.0f} ms, browser {cpu['browser_cpu']:.0f} ms; new text on {changed}, "
            f"rerun twice on {double})")
    if double:
        line += (f"; first rerun alone: median {statistics.median(first):.0f} ms, max {max(first):.0f} ms")
    return line


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presses", type=int, default=48, help="timed presses per page (after 3 warm-up presses)")
    p.add_argument("--quiet", type=int, default=700, help="ms without any change that count as settled")
    p.add_argument("--baseline", metavar="REV", help="also time the app at this git revision, presses alternating")
    p.add_argument("--detail", action="store_true", help="name each press's slider, its first rerun and reruns")
    p.add_argument("--sliders", default="", metavar="LABEL",
                   help="press only the sliders whose label starts with LABEL (e.g. 'Density of class')")
    p.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES), metavar="PAGE",
                   help=f"pages to time (default: all of {', '.join(PAGES)})")
    args = p.parse_args(argv)
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    import streamlit

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    print(f"# {platform.node()}: {cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"# Python {platform.python_version()}, Streamlit {streamlit.__version__}, {chromium}")
    print(f"# {args.presses} timed presses per page after 3 warm-up ones; settled = {args.quiet} ms without change"
          + (f"; sliders labelled {args.sliders!r}..." if args.sliders else ""), flush=True)

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        tmp = Path(tmp)
        trees = {"ours": ROOT}
        if args.baseline:
            base = tmp / "baseline"
            base.mkdir()
            archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
            trees = {f"baseline {args.baseline}": base, **trees}
        servers = {}
        try:
            for label, tree in trees.items():
                (tmp / label).mkdir()
                servers[label] = serve(tree, tmp / label / "streamlit.log")
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # Playwright's driver and the Chromium processes under it: every child of this process but the servers
            browser_pids = [pid for pid in child_pids(os.getpid()) if pid not in {p.pid for p, _ in servers.values()}]
            lines = []
            for page_name, path in ((name, PAGES[name]) for name in args.pages):
                targets = [open_target(browser, f"{page_name} [{label}]", url, path, proc.pid, args.sliders)
                           for label, (proc, url) in servers.items()]
                targets = [t for t in targets if t is not None]
                if not targets:
                    print(f"# {page_name} ({path}): not in this app, skipped", flush=True)
                    continue
                try:
                    run_presses(targets, args.presses, args.quiet, browser_pids)
                except Exception as err:   # report the pages measured so far rather than nothing
                    print(f"# {page_name}: stopped by {type(err).__name__}: {str(err).splitlines()[0]}", flush=True)
                for target in (t for t in targets if t.presses):
                    ms = " ".join(f"{r['ms']:.0f}" for r in target.presses)
                    if args.detail:
                        ms = "; ".join(f"{r['slider']} {r['ms']:.0f} (first {r['first']:.0f}, {r['runs']} runs)"
                                       for r in target.presses)
                    print(f"# {target.name} per press (ms): {ms}", flush=True)
                    lines.append(f"{summary(target.name, target.presses)}; load average {os.getloadavg()[0]:.1f}")
                    target.page.close()
            browser.close()
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
