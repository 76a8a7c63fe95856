"""Where the 68 landmarks of a SynthFER face are: a mean face, identities, action units.

Everything here lives in "face units": x to the image's right, y down, z towards the
camera, the origin between the eyes, the jaw 2 units wide at ear level. The renderer
(`face_render.py`) projects these 3-D points into pixels; nothing here knows about
images.

The 68 points follow the iBUG / 300-W order: 0-16 jaw (image left to right over the
chin), 17-21 and 22-26 brows, 27-30 nose bridge, 31-35 nostrils, 36-41 and 42-47 eyes
(each from the outer or inner corner over the upper lid), 48-59 outer lips, 60-67 inner
lips. Index 36 is the subject's right eye's outer corner, on the image's left.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..errors import UserError


def _jaw(squareness: float = 2.6) -> np.ndarray:
    # A super-ellipse from one ear over the chin to the other: squareness 2 is an
    # oval jaw, 3 a square one.
    angle = np.pi * (1 - np.arange(17) / 16)
    power = 2 / squareness
    x = np.sign(np.cos(angle)) * np.abs(np.cos(angle)) ** power
    y = -0.25 + 1.30 * np.abs(np.sin(angle)) ** power
    return np.stack([x, y], 1)


_LEFT_HALF = {  # image-left half and the midline; the rest is mirrored
    17: (-0.78, -0.50), 18: (-0.64, -0.60), 19: (-0.47, -0.64), 20: (-0.31, -0.62), 21: (-0.15, -0.57),
    27: (0.0, -0.29), 28: (0.0, -0.15), 29: (0.0, -0.01), 30: (0.0, 0.13),
    31: (-0.15, 0.24), 32: (-0.08, 0.265), 33: (0.0, 0.28),
    36: (-0.58, -0.29), 37: (-0.47, -0.355), 38: (-0.33, -0.355), 39: (-0.22, -0.29),
    40: (-0.33, -0.245), 41: (-0.47, -0.245),
    48: (-0.36, 0.57), 49: (-0.23, 0.515), 50: (-0.09, 0.485), 51: (0.0, 0.495),
    57: (0.0, 0.695), 58: (-0.11, 0.685), 59: (-0.24, 0.645),
    60: (-0.30, 0.57), 61: (-0.11, 0.56), 62: (0.0, 0.565), 66: (0.0, 0.575), 67: (-0.11, 0.575),
}
_MIRRORED_FROM = {22: 21, 23: 20, 24: 19, 25: 18, 26: 17, 34: 32, 35: 31, 42: 39, 43: 38, 44: 37,
                  45: 36, 46: 41, 47: 40, 52: 50, 53: 49, 54: 48, 55: 59, 56: 58, 63: 61, 64: 60,
                  65: 67}


def _mean_face_2d() -> np.ndarray:
    pts = np.zeros((68, 2))
    pts[:17] = _jaw()
    for i, xy in _LEFT_HALF.items():
        pts[i] = xy
    for i, src in _MIRRORED_FROM.items():
        pts[i] = (-pts[src, 0], pts[src, 1])
    return pts


MEAN_FACE = _mean_face_2d()
# Horizontal flip of a face permutes its landmarks: MIRROR_68[i] is the index that
# point i becomes (found from the symmetric mean face, so no hand-typed table).
MIRROR_68 = np.array([int(np.argmin(np.abs(MEAN_FACE - (-p[0], p[1])).sum(1))) for p in MEAN_FACE])

# Height of each landmark above the face plane: the nose sticks out, eyes sit deep.
_BULGE = np.zeros(68)
_BULGE[27:31] = (0.08, 0.16, 0.26, 0.36)
_BULGE[31:36] = (0.12, 0.18, 0.22, 0.18, 0.12)
_BULGE[36:48] = -0.04
_BULGE[48:68] = 0.06


def surface_depth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Depth of the head (an ellipsoid, flatter at the top) under face point (x, y)."""
    above = np.minimum(y + 0.3, 0.0)
    return 0.9 * np.sqrt(np.maximum(1 - x * x - 0.15 * above * above, 0.0))


# --------------------------------------------------------------------------- action units
ACTION_UNITS = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU15", "AU17",
                "AU20", "AU23", "AU25", "AU26")
AU_DESCRIPTIONS = {
    "AU1": "inner brow raiser", "AU2": "outer brow raiser", "AU4": "brow lowerer",
    "AU5": "upper lid raiser", "AU6": "cheek raiser", "AU7": "lid tightener",
    "AU9": "nose wrinkler", "AU10": "upper lip raiser", "AU12": "lip corner puller",
    "AU15": "lip corner depressor", "AU17": "chin raiser", "AU20": "lip stretcher",
    "AU23": "lip tightener", "AU25": "lips part", "AU26": "jaw drop",
}

# Displacement of each landmark at full intensity, as (outward, down) in face units,
# written for the image-left half and the midline (outward is 0 there); the other
# half is mirrored. Sizes are read off FACS descriptions, scaled to this face.
_AU_MOVES = {
    "AU1": {21: (0, -0.13), 20: (0, -0.10), 19: (0, -0.06), 18: (0, -0.03), 37: (0, -0.01), 38: (0, -0.015)},
    "AU2": {17: (0, -0.13), 18: (0, -0.12), 19: (0, -0.09), 20: (0, -0.05), 21: (0, -0.02), 37: (0, -0.01)},
    "AU4": {17: (0, 0.02), 18: (0, 0.04), 19: (-0.01, 0.06), 20: (-0.03, 0.09), 21: (-0.05, 0.10),
            37: (0, 0.02), 38: (0, 0.025), 36: (0, 0.005)},
    "AU5": {37: (0, -0.065), 38: (0, -0.065), 36: (0, -0.01), 39: (0, -0.005), 40: (0, 0.01), 41: (0, 0.01)},
    "AU6": {40: (0, -0.035), 41: (0, -0.035), 36: (0, -0.015), 48: (0.01, -0.015), 60: (0.01, -0.015)},
    "AU7": {40: (0, -0.04), 41: (0, -0.04), 37: (0, 0.025), 38: (0, 0.02), 36: (0, -0.005)},
    "AU9": {31: (0.02, -0.04), 32: (0.01, -0.045), 33: (0, -0.045), 30: (0, -0.02), 29: (0, -0.01),
            49: (0, -0.03), 50: (0, -0.04), 51: (0, -0.04), 61: (0, -0.02), 62: (0, -0.02),
            21: (-0.02, 0.05), 20: (-0.01, 0.03), 40: (0, -0.02), 41: (0, -0.02)},
    "AU10": {49: (0, -0.05), 50: (0, -0.065), 51: (0, -0.06), 61: (0, -0.06), 62: (0, -0.055),
             48: (0, -0.015), 60: (0, -0.01), 31: (0.01, -0.015), 32: (0, -0.01), 33: (0, -0.01)},
    "AU12": {48: (0.10, -0.11), 60: (0.09, -0.105), 49: (0.04, -0.05), 59: (0.05, -0.06),
             58: (0.02, -0.02), 61: (0.035, -0.045), 67: (0.035, -0.045), 50: (0.015, -0.015),
             57: (0, 0.015), 4: (0.01, 0), 5: (0.01, 0), 40: (0, -0.01), 41: (0, -0.01)},
    "AU15": {48: (-0.01, 0.07), 60: (-0.01, 0.065), 49: (0, 0.03), 59: (0, 0.025), 61: (0, 0.025),
             67: (0, 0.02), 50: (0, 0.01)},
    "AU17": {57: (0, -0.04), 58: (0, -0.04), 59: (0, -0.025), 66: (0, -0.02), 67: (0, -0.02),
             8: (0, -0.03), 7: (0, -0.02), 51: (0, -0.01), 48: (0, 0.015)},
    "AU20": {48: (0.08, 0.02), 60: (0.075, 0.02), 49: (0.04, 0.01), 59: (0.05, 0.005), 58: (0.02, -0.01),
             61: (0.03, 0.005), 67: (0.03, 0.005), 50: (0.01, 0.01), 51: (0, 0.012), 57: (0, -0.01)},
    "AU23": {48: (-0.05, 0), 60: (-0.05, 0), 49: (-0.03, 0.02), 59: (-0.03, -0.02), 50: (-0.01, 0.025),
             51: (0, 0.025), 58: (-0.01, -0.03), 57: (0, -0.03), 61: (-0.02, 0.005), 67: (-0.02, -0.005)},
    "AU25": {61: (0, -0.01), 62: (0, -0.012), 67: (0, 0.035), 66: (0, 0.04), 58: (0, 0.03),
             57: (0, 0.03), 59: (0, 0.02), 60: (0, 0.005)},
    "AU26": {59: (0, 0.08), 58: (0, 0.13), 57: (0, 0.15), 67: (0, 0.13), 66: (0, 0.15),
             48: (-0.015, 0.05), 60: (-0.02, 0.05), 49: (0, 0.01), 61: (0, 0.01),
             8: (0, 0.18), 7: (0, 0.17), 6: (0, 0.14), 5: (0, 0.10), 4: (0, 0.06), 3: (0, 0.03)},
}


def _displacement_table() -> np.ndarray:
    table = np.zeros((len(ACTION_UNITS), 68, 2))
    for k, name in enumerate(ACTION_UNITS):
        for i, (out, down) in _AU_MOVES[name].items():
            side = np.sign(MEAN_FACE[i, 0])
            table[k, i] = (out * side, down)
            j = MIRROR_68[i]
            if j != i:
                table[k, j] = (-out * side, down)
    return table


AU_DISPLACEMENTS = _displacement_table()   # (n_AU, 68, 2), face units at intensity 1


def au_vector(action_units: dict | None) -> np.ndarray:
    """A {name: intensity} dict as a vector in ACTION_UNITS order (unknown names are an error)."""
    vec = np.zeros(len(ACTION_UNITS))
    for name, value in (action_units or {}).items():
        if name not in ACTION_UNITS:
            raise UserError(f"unknown action unit {name!r}; known: {', '.join(ACTION_UNITS)}")
        vec[ACTION_UNITS.index(name)] = value
    return np.clip(vec, 0.0, 1.5)


# --------------------------------------------------------------------------- identities
SKIN_TONES = np.array([(244, 210, 186), (228, 180, 150), (205, 148, 112), (172, 114, 78),
                       (128, 82, 54), (88, 56, 38)], float)
HAIR_COLORS = np.array([(28, 22, 20), (62, 42, 30), (110, 74, 46), (196, 160, 102), (150, 72, 38),
                        (150, 148, 146), (214, 208, 200)], float)
IRIS_COLORS = np.array([(58, 34, 20), (98, 60, 30), (118, 98, 52), (78, 108, 70), (72, 108, 158),
                        (106, 118, 128)], float)
HAIR_STYLES = ("bald", "short", "long", "fringe", "side-part", "bun")
GLASSES = ("none", "round", "rectangular")
BEARDS = ("none", "stubble", "full", "goatee")


@dataclass
class FaceIdentity:
    """One person: proportions, colours, hair, accessories and a resting expression."""
    face_width: float = 1.0
    face_length: float = 1.0
    jaw_squareness: float = 2.6
    eye_spacing: float = 0.0        # outward shift of both eyes
    eye_size: float = 1.0
    eye_tilt: float = 0.0           # outer corners up (+) or down (-)
    brow_height: float = 0.0
    brow_thickness: float = 0.05
    brow_arch: float = 1.0
    nose_length: float = 0.0
    nose_width: float = 1.0
    mouth_height: float = 0.0
    mouth_width: float = 1.0
    upper_lip: float = 1.0
    lower_lip: float = 1.0
    skin: tuple = (228, 180, 150)
    lips: tuple = (190, 110, 105)
    iris: tuple = (98, 60, 30)
    hair_color: tuple = (62, 42, 30)
    hair_style: str = "short"
    hairline: float = 0.0           # how far the hairline sits below the default
    glasses: str = "none"
    glasses_color: tuple = (30, 30, 30)
    beard: str = "none"
    clothes: tuple = (60, 80, 120)
    # Some people look a little sad or cross at rest: a resting AU vector that is
    # added to every expression (one source of the inter-class similarity).
    resting_aus: np.ndarray = field(default_factory=lambda: np.zeros(len(ACTION_UNITS)))
    asymmetry: np.ndarray = field(default_factory=lambda: np.zeros((68, 2)))

    @cached_property
    def rest(self) -> np.ndarray:
        """The 68 points at rest (face units, 68 x 2); computed once, so treat a person as read-only."""
        return neutral_landmarks(self)


def _mix(a, b, t):
    return tuple(float(v) for v in np.asarray(a, float) * (1 - t) + np.asarray(b, float) * t)


def sample_identity(rng: np.random.Generator, resting_strength: float = 1.0) -> FaceIdentity:
    """A random person. Every choice is drawn from `rng`, in a fixed order."""
    u = rng.uniform
    tone = u(0, len(SKIN_TONES) - 1)
    low = int(tone)
    skin = np.asarray(_mix(SKIN_TONES[low], SKIN_TONES[min(low + 1, len(SKIN_TONES) - 1)], tone - low))
    skin = np.clip(skin * u(0.95, 1.05, 3), 0, 255)
    lips = _mix(skin * 0.82, (176, 70, 76), u(0.25, 0.5))
    grey_chance = 0.12
    hair_index = int(rng.integers(0, 5)) if u() > grey_chance else int(rng.integers(5, 7))
    if tone > 3.2 and hair_index in (3, 4):
        hair_index = 0          # blond and red hair are rare with the darkest skin tones
    iris_index = int(rng.integers(0, 2)) if tone > 2.5 else int(rng.integers(0, len(IRIS_COLORS)))
    style = HAIR_STYLES[int(rng.choice(len(HAIR_STYLES), p=(0.08, 0.34, 0.22, 0.14, 0.14, 0.08)))]
    glasses = GLASSES[int(rng.choice(3, p=(0.78, 0.11, 0.11)))]
    beard = BEARDS[int(rng.choice(4, p=(0.72, 0.12, 0.10, 0.06)))]
    resting = np.zeros(len(ACTION_UNITS))
    for name, top in (("AU4", 0.35), ("AU15", 0.35), ("AU1", 0.3), ("AU12", 0.3), ("AU7", 0.25),
                      ("AU23", 0.2), ("AU5", 0.2), ("AU2", 0.2)):
        if u() < 0.35:
            resting[ACTION_UNITS.index(name)] = u(0, top) * resting_strength
    return FaceIdentity(
        face_width=u(0.9, 1.08), face_length=u(0.92, 1.1), jaw_squareness=u(2.0, 3.3),
        eye_spacing=u(-0.035, 0.035), eye_size=u(0.85, 1.15), eye_tilt=u(-0.03, 0.03),
        brow_height=u(-0.05, 0.05), brow_thickness=u(0.03, 0.075), brow_arch=u(0.6, 1.4),
        nose_length=u(-0.05, 0.07), nose_width=u(0.8, 1.3),
        mouth_height=u(-0.04, 0.04), mouth_width=u(0.85, 1.15), upper_lip=u(0.7, 1.3), lower_lip=u(0.7, 1.4),
        skin=tuple(float(v) for v in skin), lips=lips, iris=tuple(IRIS_COLORS[iris_index]),
        hair_color=tuple(HAIR_COLORS[hair_index]), hair_style=style, hairline=u(-0.1, 0.15),
        glasses=glasses, glasses_color=tuple(float(v) for v in rng.choice([20, 40, 90, 140], 3)),
        beard=beard, clothes=tuple(float(v) for v in u(20, 230, 3)),
        resting_aus=resting, asymmetry=rng.normal(0, 0.008, (68, 2)),
    )


def neutral_landmarks(who: FaceIdentity) -> np.ndarray:
    """The person's 68 points at rest, as (68, 2) face units (no action units yet)."""
    pts = MEAN_FACE.copy()
    pts[:17] = _jaw(who.jaw_squareness)
    below = pts[:17, 1] > 0
    pts[:17, 1] = np.where(below, pts[:17, 1] * who.face_length, pts[:17, 1])
    pts[:17, 0] *= who.face_width

    left_eye, right_eye = np.arange(36, 42), np.arange(42, 48)
    for eye, side in ((left_eye, -1.0), (right_eye, 1.0)):
        centre = pts[eye].mean(0)
        rel = pts[eye] - centre
        pts[eye] = centre + rel * who.eye_size + (side * who.eye_spacing, 0)
        corner = 36 if side < 0 else 45
        pts[corner, 1] -= who.eye_tilt
    brows = np.arange(17, 27)
    middle = np.array([0.0, 0.6, 1.0, 0.6, 0.0] * 2)   # arch lifts the middle of each brow
    pts[brows, 1] += who.brow_height - (who.brow_arch - 1) * 0.05 * middle
    pts[brows, 0] += np.sign(pts[brows, 0]) * who.eye_spacing * 0.8

    pts[29:36, 1] += who.nose_length * np.array([0.5, 1, 1, 1, 1, 1, 1])
    pts[31:36, 0] *= who.nose_width
    mouth = np.arange(48, 68)
    centre = pts[mouth].mean(0)
    rel = pts[mouth] - centre
    rel[:, 0] *= who.mouth_width
    upper = np.array([49, 50, 51, 52, 53]) - 48
    lower = np.array([55, 56, 57, 58, 59]) - 48
    rel[upper, 1] = (rel[upper, 1] + 0.01) * who.upper_lip - 0.01
    rel[lower, 1] = (rel[lower, 1] - 0.01) * who.lower_lip + 0.01
    pts[mouth] = centre + rel + (0, who.mouth_height)
    pts += who.asymmetry
    return pts


def _keep_lids_and_lips_apart(pts: np.ndarray) -> None:
    # Lids and lips can meet but never pass through each other, whatever AUs add up to.
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46), (61, 67), (62, 66), (63, 65)):
        pts[lower, 1] = max(pts[lower, 1], pts[upper, 1] + 0.004)
    for outer, inner in ((50, 61), (51, 62), (52, 63)):
        pts[inner, 1] = max(pts[inner, 1], pts[outer, 1] + 0.025)
    for outer, inner in ((58, 67), (57, 66), (56, 65)):
        pts[outer, 1] = max(pts[outer, 1], pts[inner, 1] + 0.03)


def expressive_landmarks(who: FaceIdentity, aus: np.ndarray) -> np.ndarray:
    """68 x 3 points in face units: the person's face moved by AU intensities (ACTION_UNITS order)."""
    total = np.clip(np.asarray(aus, float) + who.resting_aus, 0, 1.5)
    pts = who.rest + np.tensordot(total, AU_DISPLACEMENTS, axes=1)
    _keep_lids_and_lips_apart(pts)
    z = surface_depth(pts[:, 0], pts[:, 1]) + _BULGE
    return np.concatenate([pts, z[:, None]], 1)


# iBUG indices of the outer eye corners: their distance normalises landmark errors.
OUTER_EYE_CORNERS = (36, 45)


def normalised_mean_error(predicted, truth):
    """Inter-ocular NME per face: the mean point-to-point distance divided by the distance
    between the true outer eye corners. ... x 68 x 2 -> ... ; NumPy arrays or torch tensors."""
    a, b = OUTER_EYE_CORNERS
    point_error = (((predicted - truth) ** 2).sum(-1)) ** 0.5                        # ... x 68
    interocular = (((truth[..., a, :] - truth[..., b, :]) ** 2).sum(-1)) ** 0.5      # ...
    return point_error.mean(-1) / interocular
