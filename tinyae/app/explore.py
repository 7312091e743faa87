"""The latent-space explorer: one self-contained HTML page that runs a trained decoder in the browser.

The decoder g_φ is exported as a list of layers, each a dict with its ``kind`` and its arrays (base64 of
little-endian float32), which a few dozen lines of JavaScript in the page run in order:

    linear            y = W x + b                      W (out, in), as tinyae.nn.Linear
    relu              max(x, 0)
    unflatten         the same numbers read as (C, H, W)
    upsample          nearest: y[c, i, j] = x[c, ⌊i/s⌋, ⌊j/s⌋]
    conv2d            cross-correlation                 W (out, in, kh, kw), as tinyae.nn.Conv2d
    conv_transpose2d  the adjoint of conv2d             W (in, out, kh, kw), as tinyae.nn.ConvTranspose2d

then the pixel intensities p = sigmoid(logits). A conditional VAE's decoder takes [z, onehot(y)], the
label's columns last: the page appends them to z, the digit y chosen by buttons 0 to 9. The page computes
in float64 from the float32 weights, so its intensities match tinyae's float32 decoding to about 1e-6. It
draws p as the grey level 255·(1 − p), rounded (dark ink on white paper, as tinyae's figures), each image
pixel a SCALE×SCALE square.

Nothing is fetched: no server, no network, no script or font from elsewhere; it opens from file://.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..tensor import Tensor
from .run import write_atomically

SCALE = 10  # screen pixels per image pixel on the page's large canvas
RANGE = 3.0  # the sliders span center ± RANGE·scale of each latent dimension


class ExploreError(ValueError):
    """A model whose decoder the page cannot run."""


def floats(array) -> str:
    """base64 of the array's values as little-endian float32, in row-major order."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def decoder_modules(model) -> list[nn.Module]:
    """The layers of g_φ in the order the model's ``decode`` applies them to z (to [z, onehot(y)] for a
    conditional model), for the decoders tinyae builds: an ``nn.Sequential`` ``decoder`` (the AEs and conv
    models) or the MLP VAE's fc3 → ReLU → fc4."""
    from ..models.base import Autoencoder
    from ..models.conditional import CVAE, ConvCVAE
    from ..models.mlp import VAE

    decode = type(model).decode
    if decode in (Autoencoder.decode, ConvCVAE.decode) and isinstance(getattr(model, "decoder", None),
                                                                       nn.Sequential):
        return list(model.decoder)
    if decode in (VAE.decode, CVAE.decode):
        return [model.fc3, nn.ReLU(), model.fc4]
    raise ExploreError(f"the explorer cannot export the decoder of a {type(model).__name__} (its decode is "
                       "neither an nn.Sequential decoder nor the VAE's fc3 → ReLU → fc4)")


def classes(model) -> int:
    """The number of labels a conditional model's decoder takes, 0 for the others."""
    return model.config["classes"] if model.is_conditional else 0


def layer_spec(module: nn.Module) -> dict:
    """One layer of the page's decoder: its kind, sizes and weights (bias zeros when the layer has none)."""
    def bias(size: int) -> str:
        return floats(module.bias.numpy() if module.bias is not None else np.zeros(size))

    if isinstance(module, nn.Linear):
        return {"kind": "linear", "in": module.in_features, "out": module.out_features,
                "weight": floats(module.weight.numpy()), "bias": bias(module.out_features)}
    if isinstance(module, nn.ReLU):
        return {"kind": "relu"}
    if isinstance(module, nn.Unflatten):
        if module.dim not in (1, -1):
            raise ExploreError(f"the explorer unflattens the features axis only, got {module!r}")
        return {"kind": "unflatten", "shape": list(module.unflattened_size)}
    if isinstance(module, nn.Upsample):
        return {"kind": "upsample", "scale": list(module.scale_factor)}
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        spec = {"kind": "conv2d" if isinstance(module, nn.Conv2d) else "conv_transpose2d",
                "in": module.in_channels, "out": module.out_channels, "kernel": list(module.kernel_size),
                "stride": list(module.stride), "padding": list(module.padding),
                "weight": floats(module.weight.numpy()), "bias": bias(module.out_channels)}
        if isinstance(module, nn.ConvTranspose2d):
            spec["output_padding"] = list(module.output_padding)
        return spec
    raise ExploreError(f"the explorer cannot run a {type(module).__name__} layer (it runs Linear, ReLU, "
                       "Unflatten, Upsample, Conv2d and ConvTranspose2d)")


def image_shape(model, latent_dim: int) -> tuple[int, int]:
    """(H, W) of one decoded image: the model's own output for a zero code, one channel, or a square."""
    labels = (np.zeros(1, dtype=np.int64),) if classes(model) else ()
    dtype = next(iter(model.parameters())).dtype
    with no_grad():
        shape = model.decode(Tensor(np.zeros((1, latent_dim), dtype=dtype)), *labels).shape[1:]
    if len(shape) == 3 and shape[0] == 1:
        return shape[1], shape[2]
    side = math.isqrt(shape[0]) if len(shape) == 1 else 0
    if side * side != math.prod(shape) or side == 0:
        raise ExploreError(f"the explorer draws square one-channel images; the decoder gives {shape}")
    return side, side


def explorer_data(model, codes: np.ndarray, labels: np.ndarray, images: np.ndarray, center: np.ndarray,
                  scale: np.ndarray, about: str, bounds: tuple[float, float] | None = None) -> dict:
    """What the page embeds: the decoder's layers, the test codes (N, D), their labels (N,) and images
    (N, H, W) in [0, 1], each dimension's center and scale (sliders span center ± RANGE·scale; a random
    draw is center + scale·ε, ε ~ N(0, I)), both clipped to ``bounds`` (lo, hi) where the code cannot
    leave them (a sigmoid code: (0, 1)), and a sentence about the model."""
    latent_dim = model.config["latent_dim"]
    height, width = image_shape(model, latent_dim)
    pixels = np.round(np.asarray(images, dtype=np.float64).reshape(len(images), height, width) * 255)
    return {"about": about, "latent_dim": latent_dim, "classes": classes(model), "height": height,
            "width": width, "scale": SCALE, "range": RANGE, "center": floats(center), "spread": floats(scale),
            "layers": [layer_spec(module) for module in decoder_modules(model)],
            "codes": floats(codes), "labels": [int(label) for label in labels],
            "bounds": None if bounds is None else [float(bound) for bound in bounds],
            "images": base64.b64encode(pixels.astype(np.uint8).tobytes()).decode("ascii")}


def write_explorer(model, path: Path | str, codes: np.ndarray, labels: np.ndarray, images: np.ndarray,
                   center: np.ndarray, scale: np.ndarray, title: str, about: str,
                   bounds: tuple[float, float] | None = None) -> Path:
    """Write the explorer page of ``model``'s decoder to ``path`` (see ``explorer_data`` for the rest)."""
    data = explorer_data(model, codes, labels, images, center, scale, about, bounds)
    script_safe = json.dumps(data).replace("</", "<\\/")  # no "</script>" can end the script early
    page = PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", script_safe)
    path = Path(path)
    write_atomically(path, page.encode("utf-8"))  # a kill leaves the old page or the new, never half
    return path


PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
  h1 { font-size: 18px; }
  main { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; }
  canvas { border: 1px solid #999; }
  #pad { cursor: crosshair; touch-action: none; }
  #sliders { max-height: 640px; overflow-y: auto; padding-right: 8px; }
  .slider { display: grid; grid-template-columns: 3em 14em 5em; align-items: center; }
  .slider output { text-align: right; font-variant-numeric: tabular-nums; }
  #digits button.chosen { background: #222; color: #fff; }
  #test-index { width: 5em; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
<p id="about"></p>
<main>
  <section>
    <canvas id="decoded" title="the decoded image g(z)"></canvas>
    <p>test digit: <canvas id="original" width="84" height="84"></canvas>
       <span id="original-label">(none chosen)</span></p>
  </section>
  <section>
    <p id="digits" hidden>digit: </p>
    <canvas id="pad" width="240" height="240" title="drag to move the two dimensions chosen below"></canvas>
    <p>pad: x = <select id="pad-x"></select> y = <select id="pad-y"></select></p>
    <p><button id="random">random draw</button></p>
    <p><button id="from-test">start from test digit #</button>
       <input id="test-index" type="number" min="0" value="0"></p>
  </section>
  <section id="sliders"></section>
</main>
<script>const MODEL = __DATA__;</script>
<script>
"use strict";

// ---- The embedded arrays ---------------------------------------------------------------------------------
function bytes(text) { return Uint8Array.from(atob(text), c => c.charCodeAt(0)); }

function floats(text) {  // base64 of little-endian float32 → Float64Array
  const view = new DataView(bytes(text).buffer);
  const values = new Float64Array(view.byteLength / 4);
  for (let k = 0; k < values.length; k++) values[k] = view.getFloat32(4 * k, true);
  return values;
}

// ---- The decoder's forward pass ------------------------------------------------------------------------
// A tensor is {shape, data}: one image's activations (no batch axis), row-major as in NumPy and PyTorch:
// element (c, i, j) of a (C, H, W) tensor is data[(c·H + i)·W + j].
const FORWARD = {
  // y = W x + b with W (out, in):  y_o = b_o + Σ_i W[o, i] · x_i
  linear(layer, x) {
    const y = new Float64Array(layer.out);
    for (let o = 0; o < layer.out; o++) {
      let sum = layer.bias[o];
      for (let i = 0; i < layer.in; i++) sum += layer.weight[o * layer.in + i] * x.data[i];
      y[o] = sum;
    }
    return {shape: [layer.out], data: y};
  },
  // relu(x) = max(x, 0), elementwise
  relu(layer, x) { return {shape: x.shape, data: x.data.map(v => Math.max(v, 0))}; },
  // the same numbers, read as (C, H, W)
  unflatten(layer, x) { return {shape: layer.shape, data: x.data}; },
  // nearest upsampling by (s_h, s_w):  y[c, i, j] = x[c, ⌊i / s_h⌋, ⌊j / s_w⌋]
  upsample(layer, x) {
    const [C, H, W] = x.shape, [sh, sw] = layer.scale, OH = H * sh, OW = W * sw;
    const y = new Float64Array(C * OH * OW);
    for (let c = 0; c < C; c++)
      for (let i = 0; i < OH; i++)
        for (let j = 0; j < OW; j++)
          y[(c * OH + i) * OW + j] = x.data[(c * H + Math.floor(i / sh)) * W + Math.floor(j / sw)];
    return {shape: [C, OH, OW], data: y};
  },
  // cross-correlation with W (out, in, k_h, k_w), stride s, zero padding pad:
  //   y[o, i, j] = b_o + Σ_c Σ_p Σ_q W[o, c, p, q] · x[c, s_h·i − pad_h + p, s_w·j − pad_w + q]  (0 outside)
  //   output size ⌊(H + 2·pad − k) / s⌋ + 1 per axis
  conv2d(layer, x) {
    const [C, H, W] = x.shape, [kh, kw] = layer.kernel, [sh, sw] = layer.stride, [ph, pw] = layer.padding;
    const O = layer.out, OH = Math.floor((H + 2 * ph - kh) / sh) + 1;
    const OW = Math.floor((W + 2 * pw - kw) / sw) + 1;
    const y = new Float64Array(O * OH * OW);
    for (let o = 0; o < O; o++)
      for (let i = 0; i < OH; i++)
        for (let j = 0; j < OW; j++) {
          let sum = layer.bias[o];
          for (let c = 0; c < C; c++)
            for (let p = 0; p < kh; p++) {
              const row = sh * i - ph + p;
              if (row < 0 || row >= H) continue;
              for (let q = 0; q < kw; q++) {
                const column = sw * j - pw + q;
                if (column >= 0 && column < W)
                  sum += layer.weight[((o * C + c) * kh + p) * kw + q] * x.data[(c * H + row) * W + column];
              }
            }
          y[(o * OH + i) * OW + j] = sum;
        }
    return {shape: [O, OH, OW], data: y};
  },
  // the adjoint of conv2d, W (in, out, k_h, k_w): every input pixel adds its kernel, scaled, to the output:
  //   y[o, s_h·i − pad_h + p, s_w·j − pad_w + q] += x[c, i, j] · W[c, o, p, q],   y starting at b_o
  //   output size (H − 1)·s − 2·pad + k + output_padding per axis
  conv_transpose2d(layer, x) {
    const [C, H, W] = x.shape, [kh, kw] = layer.kernel, [sh, sw] = layer.stride, [ph, pw] = layer.padding;
    const O = layer.out, OH = (H - 1) * sh - 2 * ph + kh + layer.output_padding[0];
    const OW = (W - 1) * sw - 2 * pw + kw + layer.output_padding[1];
    const y = new Float64Array(O * OH * OW);
    for (let o = 0; o < O; o++) y.fill(layer.bias[o], o * OH * OW, (o + 1) * OH * OW);
    for (let c = 0; c < C; c++)
      for (let i = 0; i < H; i++)
        for (let j = 0; j < W; j++) {
          const value = x.data[(c * H + i) * W + j];
          for (let o = 0; o < O; o++)
            for (let p = 0; p < kh; p++) {
              const row = sh * i - ph + p;
              if (row < 0 || row >= OH) continue;
              for (let q = 0; q < kw; q++) {
                const column = sw * j - pw + q;
                if (column >= 0 && column < OW)
                  y[(o * OH + row) * OW + column] += value * layer.weight[((c * O + o) * kh + p) * kw + q];
              }
            }
        }
    return {shape: [O, OH, OW], data: y};
  },
};

const LAYERS = MODEL.layers.map(layer =>
  layer.weight === undefined ? layer : {...layer, weight: floats(layer.weight), bias: floats(layer.bias)});

// p = sigmoid(g(z)) = 1 / (1 + exp(−g(z))): each pixel's intensity in [0, 1]. A conditional VAE's g
// takes [z, onehot(digit)], the label's columns last.
function decode(z, digit) {
  const onehot = Array.from({length: MODEL.classes}, (_, k) => (k === digit ? 1 : 0));
  let x = {shape: [z.length + MODEL.classes], data: Float64Array.from([...z, ...onehot])};
  for (const layer of LAYERS) x = FORWARD[layer.kind](layer, x);
  return x.data.map(logit => 1 / (1 + Math.exp(-logit)));
}

// ---- The state: the code z, and what the controls show -------------------------------------------------
const D = MODEL.latent_dim, HEIGHT = MODEL.height, WIDTH = MODEL.width, SCALE = MODEL.scale;
const CENTER = floats(MODEL.center), SPREAD = floats(MODEL.spread), CODES = floats(MODEL.codes);
const IMAGES = bytes(MODEL.images), TESTS = MODEL.labels.length;
// the code's bounds (a sigmoid code: [0, 1]) clip the sliders and the random draws
const [LOWEST, HIGHEST] = MODEL.bounds || [-Infinity, Infinity];
const within = v => Math.min(Math.max(v, LOWEST), HIGHEST);
const low = d => within(CENTER[d] - MODEL.range * SPREAD[d]);
const high = d => within(CENTER[d] + MODEL.range * SPREAD[d]);
const $ = id => document.getElementById(id);
let code = Array.from(CENTER), digit = 0, last = null;
const sliders = [], readouts = [];

// intensity p → grey level 255·(1 − p), rounded: dark ink on white paper, as tinyae's figures
function draw(canvas, intensities, scale) {
  canvas.width = WIDTH * scale;
  canvas.height = HEIGHT * scale;
  const context = canvas.getContext("2d"), image = context.createImageData(canvas.width, canvas.height);
  for (let y = 0; y < canvas.height; y++)
    for (let x = 0; x < canvas.width; x++) {
      const grey = Math.round(255 * (1 - intensities[Math.floor(y / scale) * WIDTH + Math.floor(x / scale)]));
      const k = 4 * (y * canvas.width + x);
      image.data[k] = image.data[k + 1] = image.data[k + 2] = grey;
      image.data[k + 3] = 255;  // opaque
    }
  context.putImageData(image, 0, 0);
}

function drawPad() {
  const pad = $("pad"), context = pad.getContext("2d"), a = +$("pad-x").value, b = +$("pad-y").value;
  const clamp = t => Math.min(Math.max(t, 0), 1);  // a code beyond the range: the dot on the border
  const x = clamp((code[a] - low(a)) / (high(a) - low(a))) * pad.width;
  const y = a === b ? pad.height / 2 : clamp((high(b) - code[b]) / (high(b) - low(b))) * pad.height;
  context.fillStyle = "#f4f4f4";
  context.fillRect(0, 0, pad.width, pad.height);
  context.strokeStyle = "#bbb";
  context.beginPath();
  context.moveTo(pad.width / 2, 0); context.lineTo(pad.width / 2, pad.height);  // the centers
  context.moveTo(0, pad.height / 2); context.lineTo(pad.width, pad.height / 2);
  context.stroke();
  context.fillStyle = "#c00";
  context.beginPath();
  context.arc(x, y, 5, 0, 2 * Math.PI);
  context.fill();
}

function render() {
  last = decode(code, digit);
  draw($("decoded"), last, SCALE);
  for (let d = 0; d < D; d++) {
    sliders[d].value = code[d];
    readouts[d].textContent = code[d].toFixed(3);
  }
  drawPad();
  document.querySelectorAll("#digits button").forEach((button, d) => {
    button.classList.toggle("chosen", d === digit);
  });
}

// ---- The controls ----------------------------------------------------------------------------------------
for (let d = 0; d < D; d++) {
  const row = document.createElement("label"), slider = document.createElement("input");
  row.className = "slider";
  Object.assign(slider, {type: "range", min: low(d), max: high(d), step: "any", id: "z" + d});
  slider.addEventListener("input", () => { code[d] = parseFloat(slider.value); render(); });
  const readout = document.createElement("output");
  row.append("z" + d, slider, readout);
  $("sliders").append(row);
  sliders.push(slider);
  readouts.push(readout);
  for (const select of [$("pad-x"), $("pad-y")]) select.add(new Option("z" + d, d));
}
$("pad-y").value = Math.min(1, D - 1);
$("pad-x").addEventListener("change", drawPad);
$("pad-y").addEventListener("change", drawPad);

// the pad: x from low to high of the first chosen dimension, y (upwards) of the second; one dimension on
// both (a 1-D code): x alone moves it, the dot on the middle line
function movePad(event) {
  const pad = $("pad"), box = pad.getBoundingClientRect(), a = +$("pad-x").value, b = +$("pad-y").value;
  const u = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1);
  const v = Math.min(Math.max((event.clientY - box.top) / box.height, 0), 1);
  if (a !== b) code[b] = high(b) - v * (high(b) - low(b));
  code[a] = low(a) + u * (high(a) - low(a));
  render();
}
$("pad").addEventListener("pointerdown", event => {
  $("pad").setPointerCapture(event.pointerId);
  movePad(event);
});
$("pad").addEventListener("pointermove", event => { if (event.buttons & 1) movePad(event); });

// a random draw z = center + spread·ε, ε ~ N(0, I) by Box–Muller
function normal() {
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
}
$("random").addEventListener("click", () => {
  code = code.map((_, d) => within(CENTER[d] + SPREAD[d] * normal()));
  render();
});

// a conditional VAE: the digit to draw
function setDigit(d) { digit = d; render(); }
for (let d = 0; d < MODEL.classes; d++) {
  const button = document.createElement("button");
  button.textContent = d;
  button.addEventListener("click", () => setDigit(d));
  $("digits").append(button);
}
$("digits").hidden = MODEL.classes === 0;

function startFromTest(index) {
  code = Array.from(CODES.subarray(index * D, (index + 1) * D));
  if (MODEL.classes) digit = MODEL.labels[index];  // its code is μ(x, y), for its own label y
  const pixels = HEIGHT * WIDTH;
  const thumbnail = Array.from(IMAGES.subarray(index * pixels, (index + 1) * pixels), v => v / 255);
  draw($("original"), thumbnail, 3);
  $("original-label").textContent = "#" + index + ", a " + MODEL.labels[index];
  render();
}
$("test-index").max = TESTS - 1;
$("from-test").addEventListener("click", () => {
  startFromTest(Math.min(Math.max(Math.round(+$("test-index").value) || 0, 0), TESTS - 1));
});

$("about").textContent = MODEL.about;
startFromTest(0);

// For tests and the curious: the code, the digit, the last decoded intensities (row-major), setting them.
window.explorer = {
  code: () => Array.from(code),
  digit: () => digit,
  decoded: () => Array.from(last),
  setCode(values) { code = Array.from(values, Number); render(); },
  setDigit,
};
</script>
</body>
</html>
"""
