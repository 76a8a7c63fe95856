"""Pictures of POSTER: faces and tokens, attention, Grad-CAM, confusion matrices, curves,
embeddings, galleries and predictions.

Every `plot_*` function returns a matplotlib Figure and takes `save=` (a PNG path).
Figures are not managed by pyplot: in a notebook leave one as the cell's last value
(or `display(fig)`), in a script pass `save=`. Works under the Agg backend.
"""
from .architecture import level_shapes, plot_block_schedule, plot_pyramid
from .attention import (
    AttentionResult,
    class_token_map,
    class_token_row,
    compute_attention,
    mixing_steps,
    own_token_share,
    plot_attention,
    plot_attention_overview,
    plot_token_mixing,
    token_mixing,
)
from .cam import CAM_TARGETS, LogitsOnly, cam_methods, compute_cam, gradients_through, plot_cam, tokens_to_grid
from .confusion import plot_confusion, plot_confusion_comparison, plot_confusion_figure2, row_normalise
from .curves import PAPER_ABLATIONS, load_history, plot_ablation, plot_history, plot_per_class_accuracy
from .embeddings import embedding_scores, extract_features, plot_embeddings, plot_feature_embeddings
from .faces import normalised_mean_error, plot_landmarks, plot_token_grid, predict_landmarks
from .feature_maps import feature_maps, official_token_channels, plot_feature_maps, plot_token_sources
from .gallery import cell_indices, misclassified_indices, plot_confusion_cell, plot_gallery, plot_misclassified
from .predictions import plot_predictions

__all__ = [
    "level_shapes", "plot_block_schedule", "plot_pyramid",
    "AttentionResult", "class_token_map", "class_token_row", "compute_attention", "mixing_steps",
    "own_token_share", "plot_attention", "plot_attention_overview", "plot_token_mixing", "token_mixing",
    "CAM_TARGETS", "LogitsOnly", "cam_methods", "compute_cam", "gradients_through", "plot_cam", "tokens_to_grid",
    "plot_confusion", "plot_confusion_comparison", "plot_confusion_figure2", "row_normalise",
    "PAPER_ABLATIONS", "load_history", "plot_ablation", "plot_history", "plot_per_class_accuracy",
    "embedding_scores", "extract_features", "plot_embeddings", "plot_feature_embeddings",
    "feature_maps", "official_token_channels", "plot_feature_maps", "plot_token_sources",
    "normalised_mean_error", "plot_landmarks", "plot_token_grid", "predict_landmarks",
    "cell_indices", "misclassified_indices", "plot_confusion_cell", "plot_gallery", "plot_misclassified",
    "plot_predictions",
]
