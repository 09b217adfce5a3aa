"""scikit-learn's own estimator checks, run on every head through a small ndarray adapter
(row i of a 2-D X is video i, with one frame of features), with the checks each head is expected
to fail and why. The list is strict: a check that starts passing must be taken off it."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

from harmcache.heads.base import make_head
from harmcache.heads.data import Modality, SequenceData

TINY = {
    "lightgbm": {"n_estimators": 5},
    "logreg": {},
    # Enough to pass `check_classifiers_train` (training accuracy above 0.83) in a few seconds.
    "transformer": {"epochs": 3, "lr": 1e-2, "batch_size": 16, "d_model": 8, "dim_feedforward": 16},
    "mil": {"epochs": 3, "lr": 1e-2, "batch_size": 16, "d_model": 8},
}

LABELS = (
    "the check labels its two classes with other values than 0 and 1; a head's labels are "
    "0 (safe) and 1 (harmful), and classes_ is always [0, 1]"
)
EXPECTED_FAILURES = {
    "check_estimators_dtypes": LABELS,
    "check_complex_data": LABELS,
    "check_classifier_data_not_an_array": LABELS,
    "check_classifiers_classes": LABELS,
    "check_fit2d_1feature": LABELS,
    "check_supervised_y_2d": "a column-vector y of shape (n, 1) is read as one category of "
    "(n, K) labels, without the DataConversionWarning of an estimator that takes 1-D y only",
    "check_classifiers_regression_target": "a continuous y is refused in the heads' words "
    "('labels must be 0 (safe) or 1 (harmful)'), not with 'Unknown label type'",
    "check_classifier_not_supporting_multiclass": "a third class is refused in the heads' words "
    "('labels must be 0 (safe) or 1 (harmful)'), not 'Only binary classification is supported.'",
    "check_fit2d_1sample": "one video is refused as one class ('needs both classes'), not with "
    "the words the check looks for ('1 sample', 'one class')",
    "check_requires_y_none": "without y a head reads the labels of its SequenceData and says "
    "'X has no labels: pass y, ...', not scikit-learn's 'requires y to be passed'",
    "check_estimators_empty_data_messages": "0 features are refused in the heads' words "
    "('X has 0 features (modality widths ...)'), not check_array's '0 feature(s) (shape=...)'",
    "check_n_features_in_after_fitting": "a width change is refused by modality ('fitted on "
    "features {'x': 4}, got {'x': 2}'), not as 'X has 2 features, but ... is expecting 4'",
}


def as_sequences(X) -> SequenceData:
    """A 2-D array as N videos of one frame each, in one modality `x`, of unknown duration."""
    if sparse.issparse(X):
        raise TypeError("sparse input is not supported: the heads read dense SequenceData")
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array, got {X.ndim}-D; Reshape your data")
    n = len(X)
    zeros = np.zeros((n, 1))
    frames = Modality(X.astype(np.float32)[:, None, :], np.ones((n, 1), bool), zeros, zeros)
    return SequenceData([str(i) for i in range(n)], {"x": frames})


class ArrayHead(ClassifierMixin, BaseEstimator):
    """A head as an estimator over 2-D arrays. It converts X only: y, its checks and every
    error are the head's own."""

    def __init__(self, head=None):
        self.head = head

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X, y=None):
        data = as_sequences(X)
        self.head_ = clone(self.head).fit(data, y, on_epoch=lambda report: None)
        self.classes_ = self.head_.classes_
        self.n_features_in_ = data.modalities["x"].dim
        return self

    def predict_proba(self, X):
        check_is_fitted(self)
        return self.head_.predict_proba(as_sequences(X))

    def predict(self, X):
        check_is_fitted(self)
        return self.head_.predict(as_sequences(X))


@parametrize_with_checks(
    [ArrayHead(make_head(name, **settings)) for name, settings in TINY.items()],
    expected_failed_checks=lambda estimator: EXPECTED_FAILURES,
    xfail_strict=True,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
