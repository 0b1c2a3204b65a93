"""The one HTML page of `ganstack serve`: the runs, and for the chosen run a form that calls the
JSON API (plain JavaScript, no build step) and shows every chosen checkpoint's images side by side."""
from __future__ import annotations

import html
import json
from pathlib import Path

STYLE = """
body{font-family:sans-serif;margin:1.5em;max-width:1400px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
#results img{image-rendering:pixelated;width:128px;height:128px;margin:2px}
#grid td.images{white-space:nowrap}
#results img.wide{width:auto;height:auto;max-width:640px}
canvas{border:1px solid #888;cursor:crosshair}
.error{color:#b00}.muted{color:#777}
label{margin-right:1em}
"""

SCRIPT = """
const RUN = JSON.parse(document.getElementById('run-data').textContent);
const boxes = [];
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function chosenCheckpoints() {
  return [...document.querySelectorAll('input[name=ckpt]:checked')].map(c => c.value);
}
async function readImage() {
  const file = document.getElementById('image').files[0];
  if (!file) throw new Error('choose an image file first');
  const data = await new Promise((ok, bad) => {
    const r = new FileReader(); r.onload = () => ok(r.result); r.onerror = bad; r.readAsDataURL(file);
  });
  return data.split(',')[1];
}
async function generate(ev) {
  ev.preventDefault();
  const status = document.getElementById('status');
  const body = {seed: +document.getElementById('seed').value, count: +document.getElementById('count').value,
                checkpoints: chosenCheckpoints(), output: 'base64'};
  try {
    if (RUN.kind === 'image') {
      body.image = await readImage();
      const ages = document.getElementById('ages');
      if (ages && ages.value.trim()) body.ages = ages.value.split(',').map(a => parseInt(a, 10));
    }
    else if (RUN.kind === 'layout') body.layouts = [{caption: document.getElementById('caption').value,
      objects: boxes.map(b => ({label: b.label, box: b.box}))}];
    else body.captions = document.getElementById('caption').value.split('\\n').filter(s => s.trim());
    const attention = document.getElementById('attention');
    if (attention && attention.checked) body.attention = true;
  } catch (e) { status.textContent = e.message; status.className = 'error'; return; }
  status.textContent = 'generating...'; status.className = 'muted';
  const t0 = performance.now();
  const response = await fetch('/v1/runs/' + encodeURIComponent(RUN.name) + '/generate',
    {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  const answer = await response.json();
  if (!response.ok) { status.textContent = answer.error; status.className = 'error'; return; }
  status.textContent = answer.images.length + ' images in ' + ((performance.now() - t0) / 1000).toFixed(1) + ' s';
  status.className = 'muted';
  show(answer.images);
}
function show(images) {
  // one column per checkpoint (training progress left to right), one row per input and kind
  const columns = [...new Set(images.map(i => i.checkpoint))];
  const rows = new Map();
  for (const im of images) {
    const key = im.input_index + '|' + im.kind;
    if (!rows.has(key)) rows.set(key, {label: im.label, kind: im.kind, cells: new Map()});
    const cell = rows.get(key).cells;
    if (!cell.has(im.checkpoint)) cell.set(im.checkpoint, []);
    cell.get(im.checkpoint).push(im);
  }
  const table = el('table', {id: 'grid'});
  const head = el('tr');
  head.appendChild(el('th', {}, 'input'));
  for (const c of columns) {
    const im = images.find(i => i.checkpoint === c);
    head.appendChild(el('th', {class: 'checkpoint'}, c + (im.step !== null ? ' (step ' + im.step + ')' : '')));
  }
  table.appendChild(head);
  for (const row of rows.values()) {
    const tr = el('tr');
    tr.appendChild(el('td', {}, row.label + (row.kind === 'image' ? '' : ' [' + row.kind + ']')));
    for (const c of columns) {
      const td = el('td', {class: 'images'});
      for (const im of row.cells.get(c) || []) {
        const img = el('img', {src: 'data:image/png;base64,' + im.png_base64, alt: row.label, class: 'generated'});
        if (im.kind === 'attention' || im.kind === 'layout') img.className = 'generated wide';
        td.appendChild(img);
      }
      tr.appendChild(td);
    }
    table.appendChild(tr);
  }
  const results = document.getElementById('results');
  results.replaceChildren(table);
}
function setupCanvas() {
  const canvas = document.getElementById('layout');
  if (!canvas) return;
  const ctx = canvas.getContext('2d');
  let start = null;
  const pos = e => { const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height]; };
  function redraw(extra) {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (const b of boxes.concat(extra ? [extra] : [])) {
      const [x, y, w, h] = b.box.map(v => v * canvas.width);
      ctx.strokeStyle = '#d00'; ctx.strokeRect(x, y, w, h);
      ctx.fillStyle = '#d00'; ctx.fillText(b.label, x + 3, y + 12);
    }
    document.getElementById('boxes').textContent = boxes.map(b => b.label + ' [' +
      b.box.map(v => v.toFixed(2)).join(', ') + ']').join('; ') || 'no boxes: drag on the canvas to draw one';
  }
  const box = (a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.abs(a[0] - b[0]), Math.abs(a[1] - b[1])]
    .map(v => Math.max(0, Math.min(1, v)));
  canvas.onmousedown = e => { start = pos(e); };
  canvas.onmousemove = e => { if (start) redraw({label: document.getElementById('label').value, box: box(start, pos(e))}); };
  canvas.onmouseup = e => {
    if (!start) return;
    const b = box(start, pos(e)); start = null;
    if (b[2] > 0.02 && b[3] > 0.02 && boxes.length < RUN.max_objects) boxes.push({label: document.getElementById('label').value, box: b});
    redraw();
  };
  document.getElementById('clear').onclick = () => { boxes.length = 0; redraw(); };
  redraw();
}
document.getElementById('form').addEventListener('submit', generate);
setupCanvas();
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _runs_table(runs: list[dict]) -> str:
    if not runs:
        return "<p id='no-runs'>No runs here yet: train one (<code>./train.sh</code>) and reload.</p>"
    rows = ["<tr><th>run</th><th>variant</th><th>dataset</th><th>checkpoints</th><th>eval</th><th>gallery</th></tr>"]
    for r in runs:
        last = r["checkpoints"][-1]["step"] if r["checkpoints"] else None
        rows.append(f"<tr><td><a href='/?run={_e(r['name'])}'>{_e(r['name'])}</a></td><td>{_e(r['variant'])}</td>"
                    f"<td>{_e(r['dataset'])}</td><td>{len(r['checkpoints'])}"
                    f"{'' if last is None else f' (last step {last})'}</td>"
                    f"<td>{'<a href=/v1/runs/' + _e(r['name']) + '/eval>report</a>' if r['has_eval'] else ''}</td>"
                    f"<td>{'<a href=/runs/' + _e(r['name']) + '/gallery/index.html>gallery</a>' if r['has_gallery'] else ''}"
                    "</td></tr>")
    return "<table id='runs'>" + "".join(rows) + "</table>"


def _flat(report: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for key, value in report.items():
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out.append((f"{prefix}{key}", value))
    return out


def _eval_table(latest) -> str:
    if latest is None:
        return "<p class='muted'>No eval report yet (<code>ganstack eval</code>).</p>"
    name, report = latest
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(round(v, 4) if isinstance(v, float) else v)}</td></tr>"
                   for k, v in _flat(report))
    return f"<h3>Latest eval report: {_e(name)}</h3><table id='eval'>{rows}</table>"


def _checkpoint_boxes(checkpoints: list[dict]) -> str:
    if not checkpoints:
        return "<p class='error'>This run has no checkpoint yet.</p>"
    # preselect up to four, evenly spread and always the latest: training progress at a glance
    n = len(checkpoints)
    chosen = {round(i * (n - 1) / 3) for i in range(4)} if n > 4 else set(range(n))
    boxes = "".join(f"<label><input type='checkbox' name='ckpt' value='{_e(c['name'])}'"
                    f"{' checked' if i in chosen else ''}> {_e(c['name'])}</label>" for i, c in enumerate(checkpoints))
    return f"<p>Checkpoints: {boxes}</p>"


def _form(info: dict) -> str:
    kind = info["kind"]
    if kind == "image":
        inputs = "<p><label>Input image (PNG or JPEG) <input type='file' id='image' accept='image/png,image/jpeg'></label></p>"
        if info.get("ages"):
            inputs += ("<p><label>Ages (an aging strip; empty: the outputs of the sampling direction) "
                       "<input type='text' id='ages' value='20,40,60'></label></p>")
    else:
        inputs = ("<p><label>Caption" + (" (one per line)" if kind == "text" else "") + "<br><textarea id='caption' "
                  "rows='3' cols='70'>a red circle</textarea></label></p>")
    if kind == "layout":
        labels = "".join(f"<option>{_e(name)}</option>" for name in info.get("labels") or [])
        inputs += ("<p>Layout: choose a label, then drag a box on the canvas. <select id='label'>" + labels +
                   "</select> <button type='button' id='clear'>clear boxes</button></p>"
                   "<canvas id='layout' width='256' height='256'></canvas><p id='boxes' class='muted'></p>")
    attention = ("<label><input type='checkbox' id='attention'> attention maps</label>"
                 if info.get("attention") else "")
    return (f"<h2>{_e(info['name'])} <span class='muted'>({_e(info['variant'])}, {_e(info['dataset'])})</span></h2>"
            f"<form id='form'>{inputs}{_checkpoint_boxes(info['checkpoints'])}"
            "<p><label>Seed <input type='number' id='seed' value='0' min='0'></label>"
            "<label>Images per input <input type='number' id='count' value='4' min='1' max='16'></label>"
            f"{attention}<button type='submit' id='generate'>Generate</button> <span id='status'></span></p></form>"
            "<div id='results'></div>")


def render(root: Path, runs: list[dict], info: dict | None, missing: str | None = None) -> str:
    body = [f"<h1>ganstack</h1><p class='muted'>Runs in {_e(root)}</p>", _runs_table(runs)]
    if missing:
        body.append(f"<p class='error'>No run {_e(missing)} here.</p>")
    data = "{}"
    if info is not None:
        body.append(_form(info))
        body.append(_eval_table(info.get("eval")))
        data = json.dumps({"name": info["name"], "kind": info["kind"], "max_objects": info.get("max_objects", 0)}).replace("</", "<\\/")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>ganstack</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}"
            f"<script id='run-data' type='application/json'>{data}</script>"
            f"{'<script>' + SCRIPT + '</script>' if info is not None else ''}</body></html>")
