"""A generated Market-1501-style dataset: drawn pedestrians seen through biased cameras.

Every identity is a figure of body parts (head, hair, torso, arms, legs,
shoes, maybe a bag) whose clothing colours and patterns (solid, stripes,
checks) it keeps in every image. Colours come from a small palette weighted
like real clothes (much black, navy, grey, denim), so many identities share a
part's colour and only the combination identifies them. Each camera has its
own background, colour cast, gamma, saturation, blur, noise, JPEG quality and
framing; each visit of an identity to a camera has its own view (front, back,
side); each image its own walking pose, crop, lighting, clutter and sometimes
an occluder. This is the camera bias that makes real ReID hard, in miniature.

All randomness comes from ``numpy.random.default_rng`` seeded by
``(seed, role, ...)``, so an image depends only on the arguments and its own
identity and index: the same arguments give byte-identical files.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm.auto import tqdm

from .._checks import int_in_range
from .datasets import MARKET_FOLDERS

# Bump when the rendering changes, so folders written by an older generator are regenerated.
GENERATOR_VERSION = 1

PALETTE = np.array([
    (25, 25, 28), (70, 70, 75), (128, 128, 130), (230, 230, 225),   # black, dark grey, grey, white
    (30, 40, 90), (60, 90, 140), (40, 90, 200), (190, 30, 35),      # navy, denim, blue, red
    (110, 30, 40), (40, 130, 60), (100, 110, 50), (225, 200, 50),   # maroon, green, olive, yellow
    (230, 120, 30), (230, 140, 170), (110, 60, 140), (200, 180, 140),  # orange, pink, purple, beige
    (110, 75, 45), (150, 140, 100),                                 # brown, khaki
], dtype=np.float32)
UPPER_WEIGHTS = np.array([6, 4, 4, 5, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1], dtype=float)
LOWER_WEIGHTS = np.array([8, 4, 3, 1, 5, 6, 1, 0, 0, 0, 1, 0, 0, 0, 0, 2, 1, 2], dtype=float)
SHOES = np.array([(25, 25, 28), (230, 230, 225), (90, 60, 40), (110, 110, 115)], dtype=np.float32)
HAIR = np.array([(20, 18, 18), (60, 40, 25), (110, 75, 45), (200, 170, 100), (150, 150, 150)], dtype=np.float32)
SKIN = np.array([(235, 200, 170), (210, 165, 125), (160, 110, 75), (95, 65, 45)], dtype=np.float32)

# Labels of the part map a figure is drawn into; the colours are filled in afterwards.
BG, SKIN_L, HAIR_L, UPPER_L, LOWER_L, SHOES_L, BAG_L, OCCLUDER_L = range(8)
SOLID, STRIPES, CHECKS = range(3)
FRONT, BACK, SIDE = range(3)
NO_BAG, BACKPACK, SHOULDER_BAG, HANDBAG = range(4)


@dataclass(frozen=True)
class _Identity:
    colours: np.ndarray      # [8, 3] colour per part label
    upper_second: np.ndarray  # [3] second colour of a striped or checked top
    lower_second: np.ndarray
    upper_pattern: int
    lower_pattern: int
    period: float            # pattern period, in person heights
    build: float             # body width factor
    long_sleeves: bool
    long_hair: bool
    lower_kind: str          # "trousers", "shorts" or "skirt"
    coat: bool               # the top reaches down over the hips
    bag: int


@dataclass(frozen=True)
class _Camera:
    background: np.ndarray   # [bh, bw, 3] uint8, larger than an image: each image shows a random window
    gain: np.ndarray         # [3] colour cast and exposure
    gamma: float
    saturation: float
    scale: float             # mean person height / image height
    blur: float              # Gaussian blur radius in pixels
    noise: float             # sensor noise standard deviation
    quality: int             # JPEG quality


def _jitter(rng: np.random.Generator, colour: np.ndarray, sd: float = 14.0) -> np.ndarray:
    return np.clip(colour + rng.normal(0, sd, 3), 0, 255).astype(np.float32)


def _pick(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    return PALETTE[rng.choice(len(PALETTE), p=weights / weights.sum())]


def _make_identity(seed: int, pid: int) -> _Identity:
    rng = np.random.default_rng([seed, 1, pid])
    colours = np.zeros((8, 3), np.float32)
    colours[SKIN_L] = _jitter(rng, SKIN[rng.integers(len(SKIN))], 8)
    colours[HAIR_L] = _jitter(rng, HAIR[rng.integers(len(HAIR))], 8)
    colours[UPPER_L] = _jitter(rng, _pick(rng, UPPER_WEIGHTS))
    colours[LOWER_L] = _jitter(rng, _pick(rng, LOWER_WEIGHTS))
    colours[SHOES_L] = _jitter(rng, SHOES[rng.integers(len(SHOES))], 8)
    colours[BAG_L] = _jitter(rng, _pick(rng, UPPER_WEIGHTS))
    return _Identity(
        colours=colours,
        upper_second=_jitter(rng, _pick(rng, UPPER_WEIGHTS)),
        lower_second=_jitter(rng, _pick(rng, LOWER_WEIGHTS)),
        upper_pattern=int(rng.choice(3, p=[0.6, 0.25, 0.15])),
        lower_pattern=int(rng.choice(3, p=[0.9, 0.04, 0.06])),
        period=float(rng.uniform(0.03, 0.07)),
        build=float(rng.uniform(0.85, 1.15)),
        long_sleeves=bool(rng.random() < 0.6),
        long_hair=bool(rng.random() < 0.35),
        lower_kind=str(rng.choice(["trousers", "shorts", "skirt"], p=[0.75, 0.15, 0.1])),
        coat=bool(rng.random() < 0.15),
        bag=int(rng.choice(4, p=[0.45, 0.25, 0.15, 0.15])),
    )


def _make_camera(seed: int, cam: int, height: int, width: int) -> _Camera:
    rng = np.random.default_rng([seed, 0, cam])
    bh, bw = int(height * 1.3) + 1, int(width * 1.6) + 1
    rows = np.arange(bh)[:, None, None]
    horizon = rng.uniform(0.3, 0.7) * bh
    wall, floor = rng.uniform(40, 210, 3), rng.uniform(40, 210, 3)
    bg = np.where(rows < horizon, wall, floor) * np.ones((1, bw, 1))
    if rng.random() < 0.5:  # floor tiles
        tile = max(2, int(rng.uniform(0.06, 0.15) * height))
        lines = (np.arange(bh)[:, None] % tile == 0) | (np.arange(bw)[None, :] % tile == 0)
        bg[lines & (rows[..., 0] >= horizon)] *= 0.7
    else:  # lighter columns or windows on the wall
        period = max(4, int(rng.uniform(0.3, 0.8) * width))
        columns = (np.arange(bw) % period) < period // 3
        bg[(rows[..., 0] < horizon) & columns[None, :]] += rng.uniform(-60, 60, 3)
    # Low-frequency blotches (shadows, signs), upsampled from a coarse grid.
    coarse = rng.uniform(0, 255, (4, 3, 3)).astype(np.uint8)
    blotches = np.asarray(Image.fromarray(coarse).resize((bw, bh), Image.BILINEAR), np.float32)
    bg += (blotches - 128) * 0.35
    return _Camera(
        background=np.clip(bg, 0, 255).astype(np.uint8),
        gain=np.exp(rng.normal(0, 0.22, 3)) * rng.uniform(0.75, 1.25),
        gamma=float(rng.uniform(0.8, 1.25)),
        saturation=float(rng.uniform(0.55, 1.2)),
        scale=float(rng.uniform(0.72, 0.95)),
        blur=float(rng.uniform(0.2, 1.0) * height / 128),
        noise=float(rng.uniform(2, 8)),
        quality=int(rng.integers(70, 95)),
    )


def _draw_person(ident: _Identity, view: int, facing: int, rng: np.random.Generator,
                 cx: float, top: float, ph: float, size: tuple[int, int]) -> Image.Image:
    """The figure's part map ('L' image of part labels), person height ``ph`` pixels, head top at ``top``."""
    im = Image.new("L", size, BG)
    d = ImageDraw.Draw(im)

    def p(x: float, y: float) -> tuple[float, float]:  # person units (x right, y down from head top) -> pixels
        return cx + x * ph, top + y * ph

    def limb(a, b, label, width):
        d.line([p(*a), p(*b)], fill=label, width=max(1, round(width * ph)))

    side = view == SIDE
    bw = ident.build * (0.6 if side else 1.0)
    sw, hw = 0.12 * bw, 0.095 * bw                      # half-widths at shoulders and waist
    phase = rng.uniform(0, 2 * np.pi)
    stride = (0.11 if side else 0.025) * np.sin(phase)
    swing = (0.45 if side else 0.1) * np.sin(phase)

    def backpack():
        if side:
            x0 = -facing * sw
            d.rectangle([p(min(x0, x0 - facing * 0.09), 0.19), p(max(x0, x0 - facing * 0.09), 0.45)], fill=BAG_L)
        elif view == BACK:
            d.rectangle([p(-0.8 * sw, 0.19), p(0.8 * sw, 0.45)], fill=BAG_L)
        else:  # only the straps show from the front
            for s in (-1, 1):
                limb((s * 0.6 * sw, 0.17), (s * 0.6 * sw, 0.38), BAG_L, 0.02)

    if ident.bag == BACKPACK and side:
        backpack()
    # Legs: skin first, the garment over the part it covers.
    hip = 0.045 * bw
    cover = {"trousers": 1.0, "shorts": 0.35, "skirt": 0.0}[ident.lower_kind]
    feet = []
    for s in (-1, 1):
        hx = s * hip
        fx = (s * stride if side else s * hip * 0.8 + stride * s * 0.3) + rng.normal(0, 0.005)
        limb((hx, 0.5), (fx, 0.95), SKIN_L, 0.065 * ident.build)
        if cover:
            limb((hx, 0.5), (hx + (fx - hx) * cover, 0.5 + 0.45 * cover), LOWER_L, 0.075 * ident.build)
        feet.append(fx)
    for fx in feet:
        toe = facing * 0.02 if side else 0.0
        d.ellipse([p(fx + toe - 0.045, 0.935), p(fx + toe + 0.045, 0.985)], fill=SHOES_L)
    d.polygon([p(-hw, 0.46), p(hw, 0.46), p(hw * 1.05, 0.58), p(-hw * 1.05, 0.58)], fill=LOWER_L)
    if ident.lower_kind == "skirt":
        d.polygon([p(-hw, 0.46), p(hw, 0.46), p(hw * 1.6, 0.72), p(-hw * 1.6, 0.72)], fill=LOWER_L)
    if ident.long_hair and view == FRONT:
        d.rectangle([p(-0.055, 0.07), p(0.055, 0.26)], fill=HAIR_L)
    # Torso: a trapezoid, down over the hips for a coat.
    hem, hem_w = (0.7, hw * 1.3) if ident.coat else (0.52, hw)
    d.polygon([p(-sw, 0.16), p(sw, 0.16), p(hem_w, hem), p(-hem_w, hem)], fill=UPPER_L)
    if ident.long_hair and view != FRONT:
        back = -0.02 * facing if side else 0.0  # seen from the side, hair hangs behind the head
        d.rectangle([p(back - 0.05, 0.07), p(back + 0.05, 0.27)], fill=HAIR_L)
    if ident.bag == BACKPACK and not side:
        backpack()
    # Arms swing against the legs; a short sleeve leaves the forearm bare.
    hands = []
    for s in (-1, 1):
        angle = (-s * swing if side else s * (0.1 + abs(swing))) + rng.normal(0, 0.05)
        shoulder = (0.0 if side else s * (sw - 0.015), 0.18)
        elbow = (shoulder[0] + 0.16 * np.sin(angle), shoulder[1] + 0.16 * np.cos(angle))
        bend = angle + (facing * 0.3 if side else 0.0)
        hand = (elbow[0] + 0.15 * np.sin(bend), elbow[1] + 0.15 * np.cos(bend))
        limb(shoulder, elbow, UPPER_L, 0.055 * ident.build)
        limb(elbow, hand, UPPER_L if ident.long_sleeves else SKIN_L, 0.05 * ident.build)
        d.ellipse([p(hand[0] - 0.022, hand[1] - 0.022), p(hand[0] + 0.022, hand[1] + 0.022)], fill=SKIN_L)
        hands.append(hand)
    if ident.bag == SHOULDER_BAG:
        s = -1 if side else 1
        if not side:
            limb((-s * 0.7 * sw, 0.17), (s * hw, 0.44), BAG_L, 0.018)
        d.rectangle([p(s * hw - 0.02, 0.42), p(s * hw + 0.08, 0.56)], fill=BAG_L)
    elif ident.bag == HANDBAG:
        hx, hy = hands[1]
        d.rectangle([p(hx - 0.04, hy), p(hx + 0.04, hy + 0.08)], fill=BAG_L)
    # Head: hair covers it from the back, the face shows from the front or side.
    ry, rx = 0.07, 0.045 if side else 0.05
    limb((0, 0.12), (0, 0.17), SKIN_L, 0.035)
    d.ellipse([p(-rx, 0.005), p(rx, 0.005 + 2 * ry)], fill=HAIR_L)
    if view != BACK:
        fx = 0.012 * facing if side else 0.0
        d.ellipse([p(fx - rx * 0.85, 0.035), p(fx + rx * 0.85, 0.15)], fill=SKIN_L)
    return im


def _pattern(kind: int, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray | None:
    """Where a part shows its second colour; ``u, v`` are pixel positions in person heights."""
    if kind == STRIPES:
        return (np.floor(v / period) % 2).astype(bool)
    if kind == CHECKS:
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(bool)
    return None


def _clutter(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int) -> None:
    """Random objects, and sometimes a passer-by cut by the frame, behind the person."""
    for _ in range(rng.poisson(2)):
        x, y = rng.uniform(-0.2, 1.0, 2) * (w, h)
        bw, bh = rng.uniform(0.1, 0.5, 2) * (w, h)
        colour = tuple(int(c) for c in _jitter(rng, PALETTE[rng.integers(len(PALETTE))], 25))
        shape = d.rectangle if rng.random() < 0.6 else d.ellipse
        shape([x, y, x + bw, y + bh], fill=colour)
    if rng.random() < 0.3:
        edge = (0 if rng.random() < 0.5 else w) + rng.normal(0, 0.08 * w)
        half, top = rng.uniform(0.12, 0.2) * w, rng.uniform(0.0, 0.3) * h
        upper, lower = (tuple(int(c) for c in _pick(rng, wts)) for wts in (UPPER_WEIGHTS, LOWER_WEIGHTS))
        d.rectangle([edge - half, top + 0.15 * h, edge + half, top + 0.5 * h], fill=upper)
        d.rectangle([edge - 0.7 * half, top + 0.5 * h, edge + 0.7 * half, h], fill=lower)


def _render(ident: _Identity, cam: _Camera, view: int, facing: int, rng: np.random.Generator,
            height: int, width: int) -> Image.Image:
    """One image of ``ident`` seen by ``cam`` from ``view``."""
    bh, bw = cam.background.shape[:2]
    y0, x0 = rng.integers(0, bh - height + 1), rng.integers(0, bw - width + 1)
    canvas = Image.fromarray(cam.background[y0:y0 + height, x0:x0 + width])
    _clutter(ImageDraw.Draw(canvas), rng, height, width)
    img = np.asarray(canvas, np.float32).copy()

    # Framing: a detector's box is loose, so scale and position vary, and feet or head may be cut.
    ph = height * cam.scale * rng.uniform(0.88, 1.12)
    top = height * rng.uniform(0.95, 1.02) - ph
    cx = width * (0.5 + rng.normal(0, 0.07))
    labels = np.asarray(_draw_person(ident, view, facing, rng, cx, top, ph, (width, height)))
    colours = ident.colours.copy()
    if rng.random() < 0.12:  # an occluder (bench, car, bicycle) across the bottom or a side
        colours[OCCLUDER_L] = _jitter(rng, PALETTE[rng.integers(len(PALETTE))], 25)
        occ = Image.fromarray(labels)
        ow, oh = rng.uniform(0.4, 1.0) * width, rng.uniform(0.15, 0.35) * height
        ox = rng.uniform(-0.2, 0.8) * width
        ImageDraw.Draw(occ).rectangle([ox, height - oh, ox + ow, height], fill=OCCLUDER_L)
        labels = np.asarray(occ)
    person = colours[labels]
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = (u - cx) / ph, (v - top) / ph
    for part, kind, second in ((UPPER_L, ident.upper_pattern, ident.upper_second),
                               (LOWER_L, ident.lower_pattern, ident.lower_second)):
        pattern = _pattern(kind, u, v, ident.period)
        if pattern is not None:
            person[(labels == part) & pattern] = second
    # A round body lit from the front: darker towards its sides.
    person *= np.clip(1 - 2.5 * u ** 2, 0.6, 1)[..., None]
    mask = (labels != BG)[..., None]
    img = np.where(mask, person, img)

    # The camera: cast and exposure, gamma, saturation, optics blur, sensor noise.
    img = img * cam.gain * rng.uniform(0.85, 1.15)
    img = 255 * np.clip(img / 255, 0, 1) ** cam.gamma
    grey = img.mean(axis=2, keepdims=True)
    img = np.clip(grey + cam.saturation * (img - grey), 0, 255).astype(np.uint8)
    radius = cam.blur * rng.uniform(0.7, 1.3)
    img = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius)), np.float32)
    img = img + rng.normal(0, cam.noise, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _camera_counts(rng: np.random.Generator, images_per_id: int, num_cams: int) -> tuple[np.ndarray, np.ndarray]:
    """Cameras that see an identity and how many images each takes.

    At least two cameras take at least two images each, so after one image
    per camera goes to the query set, every query still has a gallery match in
    another camera.
    """
    k = int(rng.integers(2, min(num_cams, images_per_id - 2) + 1))
    cams = rng.permutation(num_cams)[:k] + 1
    counts = np.ones(k, int)
    counts[:2] = 2
    counts += rng.multinomial(images_per_id - counts.sum(), np.full(k, 1 / k))
    return cams, counts


def _complete(root: Path, params: dict) -> bool:
    """Whether ``root`` holds a finished generation with ``params``; refuses to touch foreign data."""
    meta = root / "synthetic.json"
    if not meta.is_file():
        if any(any((root / folder).glob("*.jpg")) for folder in MARKET_FOLDERS.values()):
            raise ValueError(f"root={str(root)!r} holds images but no synthetic.json, so they were not written by "
                             "make_synthetic_market; pass an empty or new folder")
        return False
    try:
        return json.loads(meta.read_text()) == {**params, "complete": True}
    except json.JSONDecodeError:
        return False


def _write_meta(root: Path, params: dict, complete: bool) -> None:
    tmp = root / "synthetic.json.tmp"
    tmp.write_text(json.dumps({**params, "complete": complete}, indent=1))
    os.replace(tmp, root / "synthetic.json")  # never a half-written file


def make_synthetic_market(root: str | os.PathLike, num_train_ids: int = 100, num_test_ids: int = 100,
                          images_per_id: int = 8, num_cams: int = 4, height: int = 128, width: int = 64,
                          seed: int = 0, progress: bool = False) -> Path:
    """Write a Market-1501-style dataset of drawn pedestrians under ``root`` and return ``root``.

    Files are ``bounding_box_train/``, ``query/`` and ``bounding_box_test/``
    images named ``PPPP_cCs1_FFFFFF_BB.jpg`` (pid, camera 1..``num_cams``,
    frame, index within the identity's visit to the camera). Train identities
    have pids ``1..num_train_ids``, test identities the next ``num_test_ids``.
    Each identity is seen by at least two cameras; of a test identity's images
    in each camera, one goes to ``query/`` and the rest to
    ``bounding_box_test/``, and every query has a gallery match in another
    camera.

    ``synthetic.json`` records the parameters: it says ``"complete": false``
    while images are written and ``true`` once all are, so a call that finds a
    complete generation with the same parameters returns at once, and an
    interrupted or different one is regenerated. A folder holding images but
    no ``synthetic.json`` is not ours and is left alone (``ValueError``).

    Args:
        root: the dataset folder, created if needed.
        num_train_ids, num_test_ids: identities per split (pids have 4 digits).
        images_per_id: images of each identity (at least 4: two cameras with a
            query and a gallery image each).
        num_cams: cameras.
        height, width: image size in pixels.
        seed: the same arguments give byte-identical files.
        progress: show a progress bar.
    """
    int_in_range("num_train_ids", num_train_ids, 1, 9998, "pids have 4 digits")
    int_in_range("num_test_ids", num_test_ids, 1, 9999 - num_train_ids, "pids have 4 digits")
    int_in_range("images_per_id", images_per_id, 4, 99,
                 "each test identity needs a query and a gallery image in each of two cameras")
    int_in_range("num_cams", num_cams, 2, 9, "camera ids have 1 digit")
    int_in_range("height", height, 16, 4096)
    int_in_range("width", width, 8, 4096)
    int_in_range("seed", seed, 0, 2**63 - 1)
    root = Path(root)
    params = dict(num_train_ids=num_train_ids, num_test_ids=num_test_ids, images_per_id=images_per_id,
                  num_cams=num_cams, height=height, width=width, seed=seed, generator=GENERATOR_VERSION)
    if _complete(root, params):
        return root

    for folder in MARKET_FOLDERS.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for old in (root / folder).glob("*.jpg"):
            old.unlink()
    _write_meta(root, params, complete=False)
    cameras = [_make_camera(seed, c, height, width) for c in range(1, num_cams + 1)]
    num_ids = num_train_ids + num_test_ids
    with tqdm(total=num_ids * images_per_id, desc="synthetic images", unit="img", disable=not progress) as bar:
        for pid in range(1, num_ids + 1):
            ident = _make_identity(seed, pid)
            rng = np.random.default_rng([seed, 2, pid])
            for cam, count in zip(*_camera_counts(rng, images_per_id, num_cams)):
                view, facing = int(rng.integers(3)), int(rng.choice([-1, 1]))
                frames = rng.integers(0, 900_000) + np.cumsum(rng.integers(5, 30, count))
                query = rng.integers(count) if pid > num_train_ids else -1
                for bb, frame in enumerate(frames):
                    split = MARKET_FOLDERS["train" if query < 0 else "query" if bb == query else "gallery"]
                    camera, image_rng = cameras[cam - 1], np.random.default_rng([seed, 3, pid, cam, bb])
                    img = _render(ident, camera, view, facing, image_rng, height, width)
                    img.save(root / split / f"{pid:04d}_c{cam}s1_{frame:06d}_{bb:02d}.jpg", quality=camera.quality)
                    bar.update()
    _write_meta(root, params, complete=True)
    return root
