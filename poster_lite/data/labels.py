"""One list of expression names for the whole package, and how each data set's own order maps to it.

The package-wide order is RAF-DB's (its label file counts 1..7 in this order). Every
loader turns its file's label into an index of CLASSES (or CLASSES_8) on reading, so
nothing downstream ever sees another order.
"""

CLASSES = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")
CLASSES_8 = CLASSES + ("Contempt",)

# AffectNet's annotation files count 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear,
# 5 Disgust, 6 Anger, 7 Contempt. AFFECTNET_TO_CLASSES[affectnet_label] is our index.
AFFECTNET_ORDER = ("Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger", "Contempt")
AFFECTNET_TO_CLASSES = tuple(CLASSES_8.index(name) for name in AFFECTNET_ORDER)

# The authors' POSTER release: the RAF-DB checkpoints' 7 outputs are CLASSES in order (the
# package's order is RAF-DB's); the AffectNet-8 checkpoints' outputs are AFFECTNET_ORDER.
RAF_DB_ORDER = CLASSES

# FER2013's csv counts 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral.
FER2013_ORDER = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral")
FER2013_TO_CLASSES = tuple(CLASSES.index(name) for name in FER2013_ORDER)

# RAF-DB basic's per-class image counts (train, test), in CLASSES order: the skew that
# SynthFER's balance="raf-db" reproduces.
RAF_DB_COUNTS = {
    "train": (1290, 281, 717, 4772, 1982, 705, 2524),
    "test": (329, 74, 160, 1185, 478, 162, 680),
}

# Folder names people use for each class (an ImageFolder tree may use any of them).
CLASS_ALIASES = {
    "surprise": "Surprise", "surprised": "Surprise",
    "fear": "Fear", "fearful": "Fear", "afraid": "Fear",
    "disgust": "Disgust", "disgusted": "Disgust",
    "happiness": "Happiness", "happy": "Happiness", "joy": "Happiness",
    "sadness": "Sadness", "sad": "Sadness",
    "anger": "Anger", "angry": "Anger",
    "neutral": "Neutral",
    "contempt": "Contempt",
}


def class_names(*sources, num_classes: int | None = None, fallback: str = "package") -> list:
    """The class names of the first source that names them (and, given `num_classes`, that
    many): a results dict with "classes", a model's `meta`, or a data set's `classes`.

    With none, `fallback="package"` gives CLASSES / CLASSES_8 (every loader maps its labels
    to them) or "class i" for another count; `fallback="index"` gives "0", "1", ...
    """
    for source in sources:
        for holder in (source, getattr(source, "meta", None)):
            if isinstance(holder, dict) and holder.get("classes"):
                names = list(holder["classes"])
                break
        else:
            names = list(getattr(source, "classes", None) or [])
        if names and (num_classes is None or len(names) == num_classes):
            return names
    if fallback == "index":
        return [str(i) for i in range(num_classes or 0)]
    if num_classes is None or num_classes == len(CLASSES):
        return list(CLASSES)
    if num_classes == len(CLASSES_8):
        return list(CLASSES_8)
    return [f"class {i}" for i in range(num_classes)]
