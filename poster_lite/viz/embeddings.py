"""What the features cluster by: expression or identity?

The paper's two difficulties are visible in feature space: intra-class discrepancy
(one expression spread over many people) and inter-class similarity (different
expressions of one person close together). A good FER feature groups by expression,
not by identity. The picture is a t-SNE of `model.forward_features`, coloured both
ways; its numeric companion is the silhouette score of the same features grouped by
expression and grouped by identity (from -1 to 1; higher = tighter, better-separated
groups). t-SNE distorts distances, so trust the scores over the picture.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .common import channel_order_of, class_names, eval_mode, finish, new_figure


def _sample_indices(count: int, max_items, seed: int) -> np.ndarray:
    if max_items is None or max_items >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=max_items, replace=False))


@torch.no_grad()
def extract_features(model, dataset, batch_size: int = 64, max_items=None, seed: int = 0,
                     channel_order=None):
    """(features N x d, expression labels N, identities N or None) from `forward_features`.

    Items whose image is not a tensor yet get the evaluation transform. At most
    `max_items` items, drawn at random with `seed`.
    """
    indices = _sample_indices(len(dataset), max_items, seed)
    identities = getattr(dataset, "identities", None)
    transform = None
    first_image = dataset[int(indices[0])][0]
    if not isinstance(first_image, torch.Tensor):
        from ..data.transforms import eval_transform
        transform = eval_transform(size=model.config.input_size, channel_order=channel_order_of(model, channel_order))
    device = next(model.parameters()).device
    features, labels = [], []
    with eval_mode(model):
        for start in tqdm(range(0, len(indices), batch_size), desc="features", leave=False):
            items = [dataset[int(i)] for i in indices[start:start + batch_size]]
            images = [transform(image) if transform else image for image, _ in items]
            features.append(model.forward_features(torch.stack(images).to(device)).float().cpu())
            labels.extend(int(label) for _, label in items)
    ids = np.asarray(identities)[indices] if identities is not None else None
    return torch.cat(features).numpy(), np.asarray(labels), ids


def embedding_scores(features, labels, identities=None) -> dict:
    """Silhouette scores (Euclidean) of the features grouped by expression and by identity."""
    from sklearn.metrics import silhouette_score

    def score(groups):
        if groups is None:
            return None
        groups = np.asarray(groups)
        if not 2 <= len(np.unique(groups)) <= len(groups) - 1:
            return None
        return float(silhouette_score(features, groups, metric="euclidean"))

    return {"silhouette_expression": score(labels), "silhouette_identity": score(identities)}


def project_2d(features, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """N x 2 coordinates: t-SNE (perplexity adapted to small sets) or PCA."""
    features = np.asarray(features, dtype=np.float32)
    if method == "pca":
        from sklearn.decomposition import PCA
        return PCA(n_components=2, random_state=seed).fit_transform(features)
    if method != "tsne":
        raise ValueError(f"unknown projection {method!r}; use 'tsne' or 'pca'")
    from sklearn.manifold import TSNE
    perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def _fmt(score):
    return "n/a" if score is None else f"{score:+.2f}"


def plot_embeddings(features, labels, identities=None, classes=None, method: str = "tsne",
                    seed: int = 0, title: str = "", save=None):
    """Two scatter plots of the same 2-D projection: coloured by expression, by identity."""
    import seaborn as sns

    labels = np.asarray(labels)
    names = list(classes) if classes is not None else class_names(None, int(labels.max()) + 1)
    points = project_2d(features, method, seed)
    scores = embedding_scores(features, labels, identities)
    panels = 2 if identities is not None else 1
    fig, axes = new_figure(1, panels, (5.6 * panels + 1.6, 5.0))
    palette = sns.color_palette("tab10", len(names))
    ax = axes[0, 0]
    for k, name in enumerate(names):
        chosen = labels == k
        if chosen.any():
            ax.scatter(points[chosen, 0], points[chosen, 1], s=14, color=palette[k], label=name, alpha=0.8)
    ax.legend(fontsize=8, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(f"by expression (silhouette {_fmt(scores['silhouette_expression'])})", fontsize=10)
    if identities is not None:
        ids = np.asarray(identities)
        unique = np.unique(ids)
        # Many identities cannot get distinct colours; a cycling palette still shows clumps.
        colours = sns.color_palette("husl", min(len(unique), 24))
        lookup = {identity: colours[i % len(colours)] for i, identity in enumerate(unique)}
        axes[0, 1].scatter(points[:, 0], points[:, 1], s=14, c=[lookup[i] for i in ids], alpha=0.8)
        axes[0, 1].set_title(f"by identity, {len(unique)} people (silhouette {_fmt(scores['silhouette_identity'])})",
                             fontsize=10)
    for a in axes[0]:
        a.set_xticks([])
        a.set_yticks([])
        a.set_xlabel(f"{method.upper()} 1")
        a.set_ylabel(f"{method.upper()} 2")
    verdict = ""
    if scores["silhouette_identity"] is not None and scores["silhouette_expression"] is not None:
        verdict = ("features group more by expression than by identity"
                   if scores["silhouette_expression"] > scores["silhouette_identity"]
                   else "features group more by identity than by expression")
    fig.suptitle(" · ".join(t for t in (title, verdict) if t) or "Feature embedding", fontsize=11)
    fig.scores = scores
    return finish(fig, save)


def plot_feature_embeddings(model, dataset, max_items: int = 600, method: str = "tsne", seed: int = 0,
                            batch_size: int = 64, title: str = "", save=None):
    """extract_features + plot_embeddings in one call (the figure's `.scores` holds the numbers)."""
    features, labels, identities = extract_features(model, dataset, batch_size, max_items, seed)
    classes = getattr(dataset, "classes", None) or class_names(model, model.config.num_classes)
    return plot_embeddings(features, labels, identities, classes, method, seed, title, save)
