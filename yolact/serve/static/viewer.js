// The yolact viewer: COCO results drawn over their images, masks decoded from RLE here in the browser.
// No build step and no outside assets: this file, viewer.css and index.html are the whole page.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { manifest: null, index: 0, image: null, sets: [], truth: null, uploadName: null };

// Compressed COCO RLE (pycocotools' rleFrString): 6-bit chunks from '0', 5 data bits each, a continuation bit,
// the last chunk's 0x10 a sign; counts after the second are deltas against the count two back.
function rleCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let x = 0, k = 0, more = true, c = 0;
    while (more) {
      c = text.charCodeAt(p) - 48;
      x += (c & 0x1f) * Math.pow(2, 5 * k);
      more = (c & 0x20) !== 0;
      p += 1; k += 1;
      if (!more && (c & 0x10)) x -= Math.pow(2, 5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

// A mask [h*w] in row-major order from an RLE (compressed string or plain counts, column-major as COCO's).
function decodeRle(rle) {
  const [h, w] = rle.size;
  const counts = typeof rle.counts === "string" ? rleCounts(rle.counts) : rle.counts;
  const mask = new Uint8Array(h * w);
  let i = 0;
  counts.forEach((run, n) => {
    if (n % 2 === 1) {
      for (let j = i; j < i + run; j++) mask[(j % h) * w + Math.floor(j / h)] = 1;
    }
    i += run;
  });
  return mask;
}

function color(categoryId, alpha) {
  const hue = (categoryId * 137.508) % 360;
  return `hsla(${hue}, 85%, 55%, ${alpha})`;
}

function rgb(categoryId) {
  const probe = document.createElement("canvas").getContext("2d");
  probe.fillStyle = color(categoryId, 1);
  probe.fillRect(0, 0, 1, 1);
  return probe.getImageData(0, 0, 1, 1).data;
}

function className(categoryId) {
  return state.manifest.categories[String(categoryId)] || `class ${categoryId}`;
}

function visible(records) {
  const minScore = parseFloat($("score").value);
  const topK = Math.max(1, parseInt($("topk").value, 10) || 1);
  const wanted = $("class-filter").value;
  return records
    .filter((r) => (r.score === undefined || r.score >= minScore) && (wanted === "all" || String(r.category_id) === wanted))
    .slice(0, topK);
}

function paintMasks(ctx, records, width, height) {
  const layer = ctx.createImageData(width, height);
  // Worst first, so that the best-scoring instance ends on top, as `yolact predict` draws.
  for (const record of [...records].reverse()) {
    const seg = record.segmentation;
    if (!seg) continue;
    const [r, g, b] = rgb(record.category_id);
    if (Array.isArray(seg)) {
      paintPolygons(ctx, seg, record.category_id);
      continue;
    }
    if (seg.size[0] !== height || seg.size[1] !== width) continue;
    const mask = decodeRle(seg);
    for (let p = 0; p < mask.length; p++) {
      if (mask[p]) {
        layer.data[4 * p] = r; layer.data[4 * p + 1] = g; layer.data[4 * p + 2] = b; layer.data[4 * p + 3] = 115;
      }
    }
  }
  const off = document.createElement("canvas");
  off.width = width; off.height = height;
  off.getContext("2d").putImageData(layer, 0, 0);
  ctx.drawImage(off, 0, 0);
}

function paintPolygons(ctx, polygons, categoryId) {
  ctx.fillStyle = color(categoryId, 0.45);
  ctx.beginPath();
  for (const flat of polygons) {
    for (let i = 0; i + 1 < flat.length; i += 2) (i === 0 ? ctx.moveTo : ctx.lineTo).call(ctx, flat[i], flat[i + 1]);
    ctx.closePath();
  }
  ctx.fill("evenodd");
}

function paintBoxes(ctx, records, options) {
  ctx.lineWidth = Math.max(1, Math.round(ctx.canvas.width / 500));
  ctx.font = `${Math.max(11, Math.round(ctx.canvas.width / 60))}px sans-serif`;
  ctx.textBaseline = "bottom";
  for (const record of records) {
    const [x, y, w, h] = record.bbox;
    ctx.strokeStyle = options.truth ? "rgba(255,255,255,0.9)" : color(record.category_id, 1);
    ctx.setLineDash(options.truth ? [6, 4] : []);
    if (options.boxes) ctx.strokeRect(x + 0.5, y + 0.5, w, h);
    if (options.labels) {
      const text = className(record.category_id) + (record.score !== undefined ? ` ${record.score.toFixed(2)}` : "");
      const width = ctx.measureText(text).width + 6;
      const height = parseInt(ctx.font, 10) + 4;
      ctx.fillStyle = options.truth ? "rgba(0,0,0,0.7)" : color(record.category_id, 0.85);
      ctx.fillRect(x, Math.max(0, y - height), width, height);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, x + 3, Math.max(height, y) - 2);
    }
  }
  ctx.setLineDash([]);
}

function panel(title, records, truthOver, isTruth) {
  const figure = document.createElement("figure");
  const canvas = document.createElement("canvas");
  const image = state.image;
  canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const shown = isTruth ? records : visible(records);
  const options = { boxes: $("show-boxes").checked, labels: $("show-labels").checked, truth: isTruth };
  if ($("show-masks").checked) paintMasks(ctx, shown, canvas.width, canvas.height);
  if (truthOver) paintBoxes(ctx, truthOver, { boxes: true, labels: options.labels, truth: true });
  paintBoxes(ctx, shown, options);
  canvas.className = isTruth ? "truth" : "detections";
  canvas.dataset.drawn = String(shown.length);
  const caption = document.createElement("figcaption");
  caption.textContent = `${title}: ${shown.length} of ${records.length}`;
  figure.append(caption, canvas);
  return figure;
}

function render() {
  const panels = $("panels");
  panels.replaceChildren();
  if (!state.image) return;
  const mode = state.truth ? $("gt-mode").value : "off";
  const names = state.manifest.results.length ? state.manifest.results : [state.uploadName || "detections"];
  state.sets.forEach((records, n) => panels.append(panel(names[n], records, mode === "over" ? state.truth : null, false)));
  if (mode === "beside") panels.append(panel("ground truth", state.truth, null, true));
  const counts = [...panels.querySelectorAll("canvas.detections")].map((c) => c.dataset.drawn);
  $("status").textContent = `${counts.join(" | ")} shown`;
}

function classOptions() {
  const select = $("class-filter");
  const before = select.value;
  const ids = new Set();
  state.sets.forEach((records) => records.forEach((r) => ids.add(r.category_id)));
  const options = [...ids].sort((a, b) => a - b).map((id) => new Option(className(id), String(id)));
  select.replaceChildren(new Option("all", "all"), ...options);
  select.value = [...select.options].some((o) => o.value === before) ? before : "all";
}

async function getJson(url, init) {
  const response = await fetch(url, init);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${url}: HTTP ${response.status}`);
  return body;
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`cannot load ${url}`));
    image.src = url;
  });
}

function showError(error) {
  $("error").hidden = false;
  $("error").textContent = String(error.message || error);
}

async function show(index) {
  const images = state.manifest.images;
  state.index = (index + images.length) % images.length;
  $("image-select").value = String(state.index);
  const sets = state.manifest.results.map((_, n) => getJson(`/v1/view/detections/${state.index}?results=${n}`));
  const truth = state.manifest.ground_truth ? getJson(`/v1/view/ground-truth/${state.index}`) : null;
  const image = loadImage(`/v1/view/images/${state.index}`);
  [state.image, state.truth, ...state.sets] = await Promise.all([image, truth, ...sets]);
  state.sets = state.sets || [];
  classOptions();
  render();
}

async function upload(file) {
  const params = new URLSearchParams({ format: "coco", score_threshold: "0", top_k: $("topk").value || "100" });
  const records = await getJson(`/v1/predict?${params}`, { method: "POST", body: file,
    headers: { "Content-Type": file.type || "application/octet-stream" } });
  state.image = await loadImage(URL.createObjectURL(file));
  state.uploadName = file.name;
  state.sets = [records];
  state.truth = null;
  classOptions();
  render();
}

async function start() {
  state.manifest = await getJson("/v1/view/manifest");
  const viewing = state.manifest.mode === "view";
  $("source-controls").hidden = !viewing;
  $("upload-label").hidden = viewing;
  $("gt-label").hidden = !state.manifest.ground_truth;
  if (viewing) $("score").value = "0";
  $("score-value").textContent = $("score").value;
  const select = $("image-select");
  state.manifest.images.forEach((image) => select.append(new Option(image.file_name, String(image.index))));
  select.addEventListener("change", () => show(parseInt(select.value, 10)).catch(showError));
  $("prev").addEventListener("click", () => show(state.index - 1).catch(showError));
  $("next").addEventListener("click", () => show(state.index + 1).catch(showError));
  document.addEventListener("keydown", (event) => {
    if (!viewing || event.target.tagName === "INPUT") return;
    if (event.key === "ArrowLeft") show(state.index - 1).catch(showError);
    if (event.key === "ArrowRight") show(state.index + 1).catch(showError);
  });
  $("score").addEventListener("input", () => { $("score-value").textContent = $("score").value; render(); });
  for (const id of ["topk", "class-filter", "show-masks", "show-boxes", "show-labels", "gt-mode"]) {
    $(id).addEventListener("input", render);
    $(id).addEventListener("change", render);
  }
  $("upload").addEventListener("change", () => {
    if ($("upload").files.length) upload($("upload").files[0]).catch(showError);
  });
  if (viewing && state.manifest.images.length) await show(0);
}

start().catch(showError);
