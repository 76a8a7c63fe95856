"""Pixels for a SynthFER face: OpenCV polygons with anti-aliased edges, no texture maps.

Every part (jaw, brows, lids, lips, hair, glasses, beard, occluders) is a point list in
face units (see `face_geometry.py`). The parts are collected into a `Sketch` (a
display list), projected through one `Camera` in a single vectorised step (mild yaw,
then roll, scale and shift) and then filled in order. The 68 landmarks ride in the
same projection, so they sit on the drawn features whatever the pose. Coordinates keep
4 sub-pixel bits (cv2's `shift`), which keeps small features smooth at 112 px.
Shading and lighting are one gain map applied at the end: a lit ellipsoid warped onto
the face plus a gradient over the whole picture.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .face_geometry import ACTION_UNITS, FaceIdentity, expressive_landmarks, surface_depth

SHIFT = 4
_SUBPIXEL = 1 << SHIFT
_AA = cv2.LINE_AA
FACE_SCALE = 0.33     # face units -> fraction of the image side (jaw width 0.66 of the image)


@dataclass
class Pose:
    roll: float = 0.0     # degrees, in the image plane, clockwise on screen
    yaw: float = 0.0      # degrees; keep it mild (|yaw| < 25): nothing is hidden behind the nose
    scale: float = 1.0
    dx: float = 0.0       # shift of the face centre, as a fraction of the image side
    dy: float = 0.0


@dataclass
class Nuisances:
    background: tuple = (205, 205, 200)
    clutter: int = 0               # background shapes behind the head
    light: float = 0.0             # strength of a directional light (0 = flat, 0.5 = harsh)
    light_angle: float = 0.0       # degrees, where the light comes from in the image plane
    brightness: float = 1.0
    color_cast: tuple = (1.0, 1.0, 1.0)
    blur: float = 0.0              # Gaussian sigma in pixels at 112 px
    noise: float = 0.0             # standard deviation on 0..255
    occlusion: str = "none"        # none, hand, bar or patch
    gaze: tuple = (0.0, 0.0)       # iris offset, in iris radii


class Camera:
    """Face units (x, y, z) -> pixel coordinates (pixel (i, j) is centred on (i, j))."""

    def __init__(self, pose: Pose, size: int):
        scale = FACE_SCALE * size * pose.scale
        roll, yaw = np.radians(pose.roll), np.radians(pose.yaw)
        self.cos_yaw, self.sin_yaw = float(np.cos(yaw)), float(np.sin(yaw))
        self.matrix = scale * np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
        self.centre = np.array([size * (0.5 + pose.dx), size * (0.5 + pose.dy)]) - 0.5

    def __call__(self, xyz: np.ndarray) -> np.ndarray:
        turned = np.empty((len(xyz), 2))
        turned[:, 0] = xyz[:, 0] * self.cos_yaw + xyz[:, 2] * self.sin_yaw
        turned[:, 1] = xyz[:, 1]
        return turned @ self.matrix.T + self.centre

    def affine(self) -> np.ndarray:
        """2 x 3 matrix taking the face plane (x, y; yaw as a squeeze) to pixels, for cv2.warpAffine."""
        m = self.matrix * (self.cos_yaw, 1.0)
        return np.hstack([m, self.centre[:, None]])


# --------------------------------------------------------------------------- curves
@lru_cache(maxsize=None)
def _spline_matrix(n: int, k: int) -> np.ndarray:
    # Catmull-Rom through n points with mirrored end tangents is linear in the points:
    # the whole curve is one (samples x n) matrix, built once per (n, k).
    t = np.arange(k) / k
    basis = 0.5 * np.stack([-t ** 3 + 2 * t ** 2 - t, 3 * t ** 3 - 5 * t ** 2 + 2,
                            -3 * t ** 3 + 4 * t ** 2 + t, t ** 3 - t ** 2], 1)
    padded = np.zeros((n + 2, n))
    padded[1:-1] = np.eye(n)
    padded[0] = 2 * padded[1] - padded[2]
    padded[-1] = 2 * padded[-2] - padded[-3]
    rows = [basis @ padded[i:i + 4] for i in range(n - 1)]
    return np.concatenate(rows + [padded[-2:-1]])


def smooth(points: np.ndarray, k: int = 4) -> np.ndarray:
    """A smooth curve through `points` (k samples per segment, both ends kept)."""
    return _spline_matrix(len(points), k) @ points


@lru_cache(maxsize=None)
def _unit_arc(start_deg: float, end_deg: float, n: int) -> np.ndarray:
    a = np.radians(np.linspace(start_deg, end_deg, n))
    return np.stack([np.cos(a), np.sin(a)], 1)


def ellipse(cx, cy, rx, ry, n: int = 16) -> np.ndarray:
    return _unit_arc(0.0, 360.0 * (n - 1) / n, n) * (rx, ry) + (cx, cy)


def arc(cx, cy, rx, ry, start_deg, end_deg, n: int = 12) -> np.ndarray:
    return _unit_arc(float(start_deg), float(end_deg), n) * (rx, ry) + (cx, cy)


_SQUARE = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


def _rotated_box(cx, cy, half_w, half_h, angle):
    c, s = np.cos(angle), np.sin(angle)
    return (_SQUARE * (half_w, half_h)) @ np.array([[c, s], [-s, c]]) + (cx, cy)


# --------------------------------------------------------------------------- display list
class Sketch:
    """Shapes in face units, drawn in the order added once everything is projected."""

    def __init__(self):
        self._xy, self._depth, self._lift, self._count, self._own_z, self.ops = [], [], [], [], [], []
        self._total = 0

    def _points(self, pts, lift=0.0, z=None) -> slice:
        # Depth: per point (3 columns), per shape (a flat feature such as the lips), or
        # else on the head's surface raised by `lift`.
        pts = np.asarray(pts, float)
        n = len(pts)
        self._xy.append(pts[:, :2])
        if pts.shape[1] == 3:
            self._own_z.append((self._total, pts[:, 2]))
        self._depth.append(np.nan if z is None else float(z))
        self._lift.append(float(lift))
        self._count.append(n)
        span = slice(self._total, self._total + n)
        self._total += n
        return span

    def fill(self, pts, color, lift=0.0, z=None):
        self.ops.append(("fill", self._points(pts, lift, z), color))

    def line(self, pts, color, width=1.0, closed=False, lift=0.0, z=None):
        self.ops.append(("line", self._points(pts, lift, z), color, width, closed))

    def clipped(self, clip, parts, lift=0.0, z=None):
        """Fill [(points, colour)] but only inside the clip polygon."""
        spans = [(self._points(p, lift, z), c) for p, c in parts]
        self.ops.append(("clipped", self._points(clip, lift, z), spans))

    def mark(self, name, pts, lift=0.0, z=None):
        self.ops.append(("mark", self._points(pts, lift, z), name))

    def project(self, cam: Camera) -> np.ndarray:
        xy = np.concatenate(self._xy)
        z = np.repeat(self._depth, self._count)
        lift = np.repeat(self._lift, self._count)
        for start, own in self._own_z:
            z[start:start + len(own)] = own
        on_surface = np.isnan(z)
        z[on_surface] = surface_depth(xy[on_surface, 0], xy[on_surface, 1]) + lift[on_surface]
        return cam(np.c_[xy, z])


def _rgb(color):
    # cv2 saturates colours to the image's range itself.
    return color.tolist() if isinstance(color, np.ndarray) else color


def _draw(img: np.ndarray, sketch: Sketch, px: np.ndarray, line_scale: float) -> dict:
    fixed = np.round(px * _SUBPIXEL).astype(np.int32)
    marks = {}
    for op in sketch.ops:
        kind, span = op[0], op[1]
        if kind == "fill":
            cv2.fillPoly(img, [fixed[span]], _rgb(op[2]), _AA, SHIFT)
        elif kind == "line":
            width = max(1, int(round(op[3] * line_scale)))
            cv2.polylines(img, [fixed[span]], op[4], _rgb(op[2]), width, _AA, SHIFT)
        elif kind == "clipped":
            _fill_clipped(img, px[span], fixed, op[2])
        else:
            marks[op[2]] = px[span]
    return marks


def _fill_clipped(img, clip_px, fixed, parts) -> None:
    # A hard-edged clip is enough: every clipped group (iris, teeth) gets an outline
    # drawn over its clip edge right afterwards.
    size = img.shape[0]
    lo = np.maximum(np.floor(clip_px.min(0)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(clip_px.max(0)).astype(int) + 2, size)
    if np.any(hi - lo < 2):
        return
    roi = img[lo[1]:hi[1], lo[0]:hi[0]]
    offset = (lo * _SUBPIXEL).astype(np.int32)
    mask = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(clip_px * _SUBPIXEL).astype(np.int32) - offset], 255, cv2.LINE_8, SHIFT)
    layer = roi.copy()
    for span, color in parts:
        cv2.fillPoly(layer, [fixed[span] - offset], _rgb(color), _AA, SHIFT)
    cv2.copyTo(layer, mask, roi)


# --------------------------------------------------------------------------- parts
def _background(img: np.ndarray, nz: Nuisances, rng: np.random.Generator) -> None:
    size = img.shape[0]
    grey = np.mean(nz.background)
    for _ in range(nz.clutter):
        # Clutter colours lean towards the background's grey: real rooms are not neon.
        color = 0.55 * rng.uniform(20, 240, 3) + 0.45 * grey
        kind = rng.integers(0, 3)
        cx, cy = rng.uniform(-0.1, 1.1, 2) * size
        r = rng.uniform(0.06, 0.35) * size
        if kind == 0:
            pts = _rotated_box(cx, cy, r, r * rng.uniform(0.2, 1.0), rng.uniform(0, np.pi))
            cv2.fillPoly(img, [np.round(pts * _SUBPIXEL).astype(np.int32)], _rgb(color), _AA, SHIFT)
        elif kind == 1:
            pts = ellipse(cx, cy, r, r * rng.uniform(0.5, 1.0), 24)
            cv2.fillPoly(img, [np.round(pts * _SUBPIXEL).astype(np.int32)], _rgb(color), _AA, SHIFT)
        else:
            end = np.array([cx, cy]) + rng.uniform(-1, 1, 2) * size * 0.6
            pts = np.round(np.array([[cx, cy], end]) * _SUBPIXEL).astype(np.int32)
            cv2.polylines(img, [pts], False, _rgb(color), max(1, int(rng.uniform(1, 4) * size / 112)), _AA, SHIFT)


def _back_hair(s: Sketch, who: FaceIdentity) -> None:
    w = who.face_width
    hair = np.asarray(who.hair_color)
    if who.hair_style == "long":
        top = arc(0, -0.25, 1.14 * w, 1.27, 180, 360, 16)
        sides = np.array([[1.22 * w, 0.6], [1.25 * w, 1.45], [0.6, 1.6], [-0.6, 1.6], [-1.25 * w, 1.45],
                          [-1.22 * w, 0.6]])
        s.fill(np.concatenate([top, sides]), hair * 0.8, z=-0.3)
    elif who.hair_style == "bun":
        s.fill(ellipse(0, -1.45, 0.42, 0.3), hair * 0.9, z=-0.2)


def _body(s: Sketch, who: FaceIdentity) -> None:
    s.fill(ellipse(0, 2.35, 2.3, 1.05, 32), who.clothes, z=-0.5)
    neck = np.array([[-0.46, 0.5], [0.46, 0.5], [0.5, 1.35], [0.2, 1.52], [0.0, 1.56], [-0.2, 1.52],
                     [-0.5, 1.35]]) * (who.face_width, 1)
    s.fill(neck, np.asarray(who.skin) * 0.74, z=-0.3)


def _ears(s: Sketch, who: FaceIdentity) -> None:
    skin = np.asarray(who.skin)
    for side in (-1, 1):
        x = side * 0.96 * who.face_width
        s.fill(ellipse(x + side * 0.03, -0.12, 0.13, 0.25), skin * 0.88, z=0.0)
        start, end = (-70, 70) if side > 0 else (110, 250)
        s.line(arc(x + side * 0.03, -0.12, 0.07, 0.15, start, end, 6), skin * 0.68, z=0.0)


def face_outline(lm: np.ndarray, who: FaceIdentity) -> np.ndarray:
    """The skin polygon: the jaw landmarks plus a forehead arc over the top (face units, 2-D)."""
    jaw = smooth(lm[:17, :2], 3)
    top = arc(0, (lm[0, 1] + lm[16, 1]) / 2, 0.97 * who.face_width, 1.1, 0, -180, 14)[1:-1]
    return np.concatenate([jaw, top])


def _wrinkles(s: Sketch, who: FaceIdentity, lm: np.ndarray, aus: dict) -> None:
    skin = np.asarray(who.skin)

    def crease(pts, strength, width=1.0):
        if strength > 0.08:
            s.line(pts, skin * (1 - 0.33 * min(strength, 1.2)), width)

    brow_lift = max(aus["AU1"], aus["AU2"])
    for y in (-0.84, -0.97):
        crease(arc(0, y + 0.35, 0.42, 0.35, 235, 305, 7), brow_lift - 0.25)
    for side in (-1, 1):
        crease(np.array([[side * 0.05, -0.52], [side * 0.045, -0.42], [side * 0.04, -0.36]]), aus["AU4"] - 0.2)
        crease(np.array([[side * 0.09, -0.22], [side * 0.05, -0.2], [side * 0.02, -0.2]]), aus["AU9"] - 0.1)
        corner = lm[48 if side < 0 else 54, :2]
        wing = lm[31 if side < 0 else 35, :2]
        start = wing + (side * 0.04, -0.05)
        fold = np.array([start, start + (side * 0.12, 0.18), corner + (side * 0.07, 0.06)])
        crease(smooth(fold, 3), 0.18 + 0.7 * max(aus["AU12"], aus["AU10"], aus["AU9"] * 0.8))
        eye_corner = lm[36 if side < 0 else 45, :2]
        for dy in (-0.03, 0.02):
            crease(np.array([eye_corner + (side * 0.04, dy * 0.5), eye_corner + (side * 0.11, dy * 1.8)]),
                   aus["AU6"] - 0.35)
        lid = lm[[41, 40] if side < 0 else [47, 46], :2].mean(0)
        crease(arc(lid[0], lid[1] + 0.02, 0.11, 0.05, 20, 160, 6), aus["AU6"] + 0.5 * aus["AU7"] - 0.2)
    chin = lm[57, :2]
    crease(arc(chin[0], chin[1] + 0.06, 0.11, 0.05, 200, 340, 6), aus["AU17"] - 0.15)


def _beard(s: Sketch, who: FaceIdentity, lm: np.ndarray) -> None:
    if who.beard == "none":
        return
    hair = np.asarray(who.hair_color)
    color = hair if who.beard != "stubble" else 0.6 * np.asarray(who.skin) + 0.32 * hair
    nose = lm[[31, 33, 35], :2]
    moustache = np.concatenate([
        lm[48:55, :2] + (0, -0.01),
        [[lm[54, 0] + 0.04, lm[54, 1] + 0.03], [nose[2, 0] + 0.06, nose[2, 1] + 0.05],
         [0.0, nose[1, 1] + 0.04], [nose[0, 0] - 0.06, nose[0, 1] + 0.05], [lm[48, 0] - 0.04, lm[48, 1] + 0.03]]])
    s.fill(moustache, color)
    under_lip = lm[[55, 56, 57, 58, 59], :2] + (0, 0.035)
    if who.beard == "goatee":
        s.fill(np.concatenate([under_lip, smooth(lm[5:12, :2], 2)[::-1] * (0.8, 1.0)]), color)
        return
    w = who.face_width
    inner = np.concatenate([[[0.82 * w, 0.0], [0.55 * w, 0.42], lm[54, :2] + (0.07, 0.0)], under_lip,
                            [lm[48, :2] - (0.07, 0.0), [-0.55 * w, 0.42], [-0.82 * w, 0.0]]])
    s.fill(np.concatenate([smooth(lm[1:16, :2], 2), inner]), color)


def _nose(s: Sketch, who: FaceIdentity, lm: np.ndarray, light_x: float) -> None:
    skin = np.asarray(who.skin)
    dark = -1 if light_x > 0 else 1      # the side away from the light
    wall = np.array([lm[27, :2] + (dark * 0.07, 0.02), lm[29, :2] + (dark * 0.1, 0),
                     lm[31 if dark < 0 else 35, :2], lm[30, :2] + (dark * 0.02, 0.0),
                     lm[28, :2] + (dark * 0.03, 0)])
    s.fill(wall, skin * 0.9, lift=0.15)
    base = lm[31:36, :2]
    s.fill(np.concatenate([base, base[::-1] * (0.8, 1) + (0, 0.05)]), skin * 0.86, lift=0.1)
    for side, i in ((-1, 31), (1, 35)):
        wing = lm[i, :2]
        start, end = (-90, 40) if side > 0 else (270, 140)
        s.line(arc(wing[0] - side * 0.05, wing[1] - 0.05, 0.06, 0.06, start, end, 6), skin * 0.72, lift=0.1)
    for i in (32, 34):
        s.fill(ellipse(lm[i, 0] * 1.05, lm[i, 1] - 0.005, 0.038, 0.02, 12), skin * 0.35, lift=0.15)
    s.fill(ellipse(lm[30, 0], lm[30, 1] - 0.04, 0.035, 0.03, 12), np.minimum(skin * 1.1, 255), lift=0.4)


def _mouth(s: Sketch, who: FaceIdentity, lm: np.ndarray) -> None:
    lips = np.asarray(who.lips)
    z = float(lm[48:68, 2].mean())
    outer_top, outer_bottom = smooth(lm[48:55, :2], 3), smooth(lm[[54, 55, 56, 57, 58, 59, 48], :2], 3)
    inner_top, inner_bottom = smooth(lm[60:65, :2], 3), smooth(lm[[64, 65, 66, 67, 60], :2], 3)
    s.fill(np.concatenate([outer_top, outer_bottom]), lips, z=z)
    s.fill(np.concatenate([outer_top, inner_top[::-1]]), lips * 0.86, z=z)
    opening = lm[[65, 66, 67], 1].mean() - lm[[61, 62, 63], 1].mean()
    if opening > 0.02:
        inside = np.concatenate([inner_top, inner_bottom])
        s.fill(inside, (62, 22, 28), z=z)
        s.clipped(inside, [(np.concatenate([inner_top, inner_top[::-1] + (0, 0.065)]), (236, 232, 220)),
                           (np.concatenate([inner_bottom, inner_bottom[::-1] - (0, 0.045)]), (214, 208, 196))], z=z)
        s.line(inside, lips * 0.55, closed=True, z=z)
    else:
        s.line(smooth(lm[[48, 61, 62, 63, 54], :2], 3), lips * 0.5, z=z)


def _eyes(s: Sketch, who: FaceIdentity, lm: np.ndarray, rest: np.ndarray, gaze) -> None:
    skin = np.asarray(who.skin)
    lash = np.minimum(np.asarray(who.hair_color) * 0.5, 40)
    for first in (36, 42):
        pts = lm[first:first + 6]
        upper, lower = smooth(pts[[0, 1, 2, 3], :2], 4), smooth(pts[[3, 4, 5, 0], :2], 4)
        z = float(pts[:, 2].mean())
        opening = np.concatenate([upper, lower])
        centre = rest[first:first + 6].mean(0)
        r = 0.2 * np.linalg.norm(rest[first + 3] - rest[first])
        iris = centre + np.asarray(gaze) * r * 0.5
        s.fill(opening, (236, 230, 222), z=z)
        s.clipped(opening, [(ellipse(iris[0], iris[1], r, r, 16), who.iris),
                            (ellipse(iris[0], iris[1], r * 0.45, r * 0.45, 12), (15, 12, 12)),
                            (ellipse(iris[0] + r * 0.35, iris[1] - r * 0.35, r * 0.18, r * 0.18, 12), (250, 250, 250))],
                  z=z)
        s.line(upper, lash, 1.3, z=z)
        s.line(lower, skin * 0.62, 0.8, z=z)
        s.line(upper[1:-1] + (0, -0.05), skin * 0.78, 0.8, z=z + 0.02)


def _brows(s: Sketch, who: FaceIdentity, lm: np.ndarray) -> None:
    color = np.minimum(np.asarray(who.hair_color) * 0.9, np.asarray(who.skin) * 0.55)
    for idx in ([17, 18, 19, 20, 21], [26, 25, 24, 23, 22]):     # outer -> inner on both sides
        centre = smooth(lm[idx, :2], 3)
        half = who.brow_thickness * (0.45 + 0.6 * np.linspace(0, 1, len(centre))) / 2
        top, bottom = centre.copy(), centre.copy()
        top[:, 1] -= half
        bottom[:, 1] += half
        tip = centre[:1] + (np.sign(centre[0, 0]) * 0.02, 0.01)
        s.fill(np.concatenate([tip, top, bottom[::-1]]), color, lift=0.02)


def _front_hair(s: Sketch, who: FaceIdentity) -> None:
    style = who.hair_style
    if style == "bald":
        return
    w = who.face_width
    hair = np.asarray(who.hair_color)
    outer = arc(0, -0.3, 1.06 * w, 1.2, 180, 360, 20)
    temple_y, top_y = -0.32, -1.0 + who.hairline
    a = np.radians(np.linspace(0, 180, 15))
    hairline = np.stack([0.93 * w * np.cos(a), temple_y - (temple_y - top_y) * np.sin(a) ** 0.5], 1)
    if style == "fringe":
        bangs = np.abs(hairline[:, 0]) < 0.7 * w
        hairline[bangs, 1] = -0.74 + 0.04 * (np.arange(15)[bangs] % 2)
    elif style == "side-part":
        hairline[:, 1] += 0.18 * np.clip(np.cos(a) + 0.3, 0, None) * (1 - np.abs(np.cos(a)) ** 4)
    s.fill(np.concatenate([outer, hairline]), hair, lift=0.05)
    for k, x in enumerate((-0.5, -0.15, 0.2, 0.55)):     # a few strands so the hair is not a helmet
        strand = np.array([[x * w, -1.35], [(x + 0.08) * w, -1.15], [(x + 0.1 - 0.05 * k) * w, top_y - 0.05]])
        s.line(smooth(strand, 3), hair * 0.72 + 8, 1.0, lift=0.05)


def _glasses(s: Sketch, who: FaceIdentity, rest: np.ndarray) -> None:
    if who.glasses == "none":
        return
    rims = []
    unit = _unit_arc(0.0, 345.0, 24)
    for first in (36, 42):
        cx, cy = rest[first:first + 6, :2].mean(0)
        rx, ry = 0.25 * who.eye_size, 0.17 * who.eye_size
        if who.glasses == "round":
            rim = unit * (rx, ry * 1.15) + (cx, cy + 0.01)
        else:
            rim = np.sign(unit) * np.abs(unit) ** 0.35 * (rx, ry) + (cx, cy + 0.01)
        rims.append(rim)
        s.line(rim, who.glasses_color, 1.2, closed=True, lift=0.12)
    bridge = np.array([rims[0][np.argmax(rims[0][:, 0])], [0, -0.33], rims[1][np.argmin(rims[1][:, 0])]])
    s.line(bridge, who.glasses_color, 1.2, lift=0.2)
    for rim, side in ((rims[0], -1), (rims[1], 1)):
        edge = rim[np.argmax(side * rim[:, 0])]
        s.line(np.array([edge, [side * 0.96 * who.face_width, -0.3]]), who.glasses_color, 1.0, lift=0.05)


def _occluder(s: Sketch, who: FaceIdentity, kind: str, rng: np.random.Generator) -> None:
    if kind == "none":
        return
    target = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.4, 0.9)])
    if kind == "hand":
        skin = np.asarray(who.skin) * rng.uniform(0.9, 1.05)
        palm = target + (rng.choice([-1, 1]) * 0.35, 0.45)
        s.fill(ellipse(palm[0], palm[1], 0.32, 0.4), skin, z=1.2)
        for k in range(4):
            x = palm[0] - 0.2 + 0.13 * k
            tip = target[1] - 0.1 * (k % 3)
            finger = np.array([[x - 0.05, palm[1]], [x + 0.05, palm[1]], [x + 0.05, tip], [x - 0.05, tip]])
            s.fill(finger, skin * (0.97 - 0.03 * k), z=1.2)
            s.line(finger[[0, 3]], skin * 0.75, 0.8, z=1.2)
    else:
        bar = kind == "bar"
        half_long = rng.uniform(0.35, 0.8) if bar else rng.uniform(0.18, 0.35)
        half_short = rng.uniform(0.06, 0.14) if bar else rng.uniform(0.15, 0.35)
        s.fill(_rotated_box(target[0], target[1], half_long, half_short, rng.uniform(0, np.pi)),
               rng.uniform(10, 245, 3), z=1.2)


# --------------------------------------------------------------------------- light
def _canonical_normals(n: int = 48):
    # Normals of an ellipsoid over the face plane, x in [-1.3, 1.3] (x divided by the
    # face width), y in [-1.6, 1.5]. Lit here, on a small grid, then warped onto the
    # face by the camera: cheaper than lighting every pixel.
    xs = np.linspace(-1.3, 1.3, n)
    ys = np.linspace(-1.6, 1.5, n)
    u, v = np.meshgrid(xs, (ys + 0.15) / 1.35)
    nz = np.sqrt(np.clip(1 - u * u - 0.5 * v * v, 0.02, None))
    return np.stack([u, 0.5 * v, nz], -1).astype(np.float32), xs, ys


_NORMALS, _NORMAL_XS, _NORMAL_YS = _canonical_normals()


def _face_gain(cam: Camera, who: FaceIdentity, light_dir: np.ndarray, mask: np.ndarray) -> np.ndarray:
    size = mask.shape[0]
    shade = np.float32(0.45) + np.float32(0.6) * np.maximum(_NORMALS @ light_dir.astype(np.float32), 0)
    step_x = (_NORMAL_XS[1] - _NORMAL_XS[0]) * who.face_width
    step_y = _NORMAL_YS[1] - _NORMAL_YS[0]
    grid_to_face = np.array([[step_x, 0, _NORMAL_XS[0] * who.face_width], [0, step_y, _NORMAL_YS[0]], [0, 0, 1]])
    face_to_px = np.vstack([cam.affine(), [0, 0, 1]])
    shade = cv2.warpAffine(shade, (face_to_px @ grid_to_face)[:2], (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    return 1 + (shade - 1) * (mask * np.float32(1 / 255))


_NOISE: dict = {}


def _noise_bank(size: int) -> np.ndarray:
    # One fixed field of Gaussian noise per image size; each image takes a random window
    # of it (standard_normal per image would cost more than drawing the face).
    if size not in _NOISE:
        _NOISE[size] = np.random.default_rng(2024).standard_normal((2 * size, 2 * size, 3), dtype=np.float32)
    return _NOISE[size]


_GRIDS: dict = {}


def _finish(img: np.ndarray, face_gain: np.ndarray, nz: Nuisances, rng: np.random.Generator) -> np.ndarray:
    # cv2 rather than numpy for the whole-image passes: mixed uint8 x float32
    # broadcasting in numpy costs more than drawing the face.
    size = img.shape[0]
    if size not in _GRIDS:
        g = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
        _GRIDS[size] = np.meshgrid(g, g)
    gx, gy = _GRIDS[size]
    angle = np.radians(nz.light_angle)
    k = 0.5 * nz.light
    gain = face_gain * (1 + np.float32(k * np.cos(angle)) * gx + np.float32(k * np.sin(angle)) * gy)
    gain *= np.float32(nz.brightness)
    out = cv2.multiply(img, cv2.merge([gain * np.float32(c) for c in nz.color_cast]), dtype=cv2.CV_32F)
    if nz.blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), nz.blur * size / 112.0)
    if nz.noise > 0:
        oy, ox = rng.integers(0, size, 2)
        out = cv2.scaleAdd(_noise_bank(size)[oy:oy + size, ox:ox + size], float(nz.noise), out)
    np.maximum(out, 0, out=out)
    return cv2.convertScaleAbs(out)      # rounds and saturates at 255


# --------------------------------------------------------------------------- entry point
def render(who: FaceIdentity, action_units: np.ndarray, pose: Pose, nuisances: Nuisances,
           size: int = 112, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw a person making an expression (AU intensities in ACTION_UNITS order).

    Returns the RGB image (size x size x 3 uint8) and the 68 landmarks in its pixel
    coordinates (float32, (x, y); pixel (i, j) has its centre at (i, j), as in OpenCV
    and matplotlib's imshow).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    landmarks = expressive_landmarks(who, action_units)
    # Wrinkles follow what the face really does: the expression plus the resting face.
    aus = dict(zip(ACTION_UNITS, np.clip(np.asarray(action_units, float) + who.resting_aus, 0, 1.5)))
    rest = who.rest
    light = np.radians(nuisances.light_angle)
    strength = 1.6 * nuisances.light
    light_dir = np.array([np.cos(light) * strength, np.sin(light) * strength, 1.0])
    light_dir /= np.linalg.norm(light_dir)

    s = Sketch()
    _back_hair(s, who)
    _body(s, who)
    _ears(s, who)
    outline = face_outline(landmarks, who)
    s.fill(outline, who.skin)
    s.mark("outline", outline)
    _wrinkles(s, who, landmarks, aus)
    _beard(s, who, landmarks)
    _nose(s, who, landmarks, np.cos(light) * nuisances.light)
    _mouth(s, who, landmarks)
    _eyes(s, who, landmarks, rest, nuisances.gaze)
    _brows(s, who, landmarks)
    _front_hair(s, who)
    _glasses(s, who, rest)
    _occluder(s, who, nuisances.occlusion, rng)
    s.mark("landmarks", landmarks)

    cam = Camera(pose, size)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = np.clip(nuisances.background, 0, 255)
    _background(img, nuisances, rng)
    marks = _draw(img, s, s.project(cam), size / 112.0)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(marks["outline"] * _SUBPIXEL).astype(np.int32)], 255, _AA, SHIFT)
    image = _finish(img, _face_gain(cam, who, light_dir, mask), nuisances, rng)
    return image, marks["landmarks"].astype(np.float32)
