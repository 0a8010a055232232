"""Label consistency: out-of-fold class probabilities from cross-fitted gradient boosting and a linear model.

Each row is predicted by a model that never saw it; folds keep near-duplicate groups together, and a group
weighs as one row in training, so a flood of copies can vouch neither for itself nor for another flood. A second
cross-fitting pass on other folds weights every row by the first pass's p(observed label), so rows that look
mislabelled pull the model less; the passes are averaged, which also halves the variance of a single split. The
statistic is the self-confidence p(observed label), calibrated by one temperature (and, with three or more
classes, a slope and bias per class); its p-value comes from the natural-ambiguity null in ``stats``. Confident
learning (Northcutt, Jiang and Chuang, JAIR 2021) adds the per-class thresholds t_j = mean p_j over rows labelled
j: a row labelled i whose p_j >= t_j for some j != i is a confident label issue, which the reason reports.

Each fold averages boosting's probabilities with a regularised logistic regression's. Boosting bends to a block of
flipped labels concentrated in one region (the textbook rows of a class, a segment): the other flipped rows of the
block outvote the clean ones there, and the flips look consistent. A linear model cannot bend to such a block; it
keeps the trend of the rest of the data, so it still doubts them. Its share is a half, less where it explains the
labels far worse than boosting (out-of-fold log loss over ``LINEAR_LOSS_RATIO`` times boosting's; none from twice
that): where the truth is a shape no line draws, its doubts would be its own failure, not the rows'.

When the features are a model's embedding (hundreds of dense columns), boosting reads its top
``EMBEDDING_TREE_DIMS`` principal components: a network's penultimate features put the classes in few directions,
and the cost of boosting grows with the columns (a 512-wide embedding of 60,000 images took minutes); the linear
model still reads them all.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..context import ScanContext, duplicate_groups
from ..features import apply_bin_edges, boosting_bin_edges, boosting_early_stopping
from ..stats import ClassProbabilityNull
from ._text import fmt_prob, quote
from .base import Detector, DetectorOutput, explain, positive_int, register

MAX_TRAIN_ROWS = 250_000
LINEAR_MAX_ROWS = 50_000  # a linear model's fit saturates long before boosting's
LINEAR_LOSS_RATIO = 1.5
# Newton boosting divides each leaf's gradient by its hessian: where a class is (nearly) separable the hessians
# vanish and, unregularised, leaf values blow up, so out-of-fold rows that land in such a leaf get an extreme wrong
# logit. adult's education (a function of education_num) on 8,000 rows: 1,270 rows at p(own label) < 0.01 with no
# penalty, 8 with this one. It is small beside the hessian of an ordinary leaf (20 rows or more), so it bounds the
# degenerate leaves and leaves the rest alone: XGBoost's default of 1 also shrank ordinary leaves on small data
# (flipped rows of a 400-row test set less extreme, median p-value 0.011 where it was below 0.01).
BOOST_L2 = 0.1
SINGLE_THREAD_CELLS = 2_000_000  # rows x columns below which one thread is faster
EMBEDDING_TREE_DIMS = 64  # principal components of a wide embedding that boosting reads


def n_folds_for(n: int) -> int:
    return 5 if n <= 100_000 else 3 if n <= 300_000 else 2


def passes_for(n: int) -> int:
    """The reweighted second pass pays off most on small, noisy data; above 300,000 rows one pass keeps the
    scan near the cost of a single model fit."""
    return 2 if n <= 300_000 else 1


def train_cap_for(n: int) -> int:
    """Rows each fold model trains on: all of them for small data, a sample above that (detection quality
    saturates long before a million rows; the scan must cost about one model fit)."""
    return MAX_TRAIN_ROWS if n <= 300_000 else 150_000


def embedding_reducer(ctx: ScanContext) -> Any:
    """A seeded PCA onto ``EMBEDDING_TREE_DIMS`` components when the table's features are a wide embedding
    (numeric, no missing values); None otherwise, and for every ordinary table."""
    X = ctx.tree_X
    assert X is not None and ctx.encoder is not None
    # the table's features are the embedding itself (a label table scanned with embeddings; see ``scan``)
    embedding = ctx.embeddings is not None and all(str(c).startswith("embedding_") for c in ctx.data.columns)
    wide = embedding and X.shape[1] > 2 * EMBEDDING_TREE_DIMS
    if not wide or np.asarray(ctx.encoder.tree_categorical, dtype=bool).any() or np.isnan(X).any():
        return None
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(ctx.seed + 7)
    rows = rng.choice(len(X), min(len(X), 50_000), replace=False)
    return PCA(EMBEDDING_TREE_DIMS, svd_solver="randomized", random_state=ctx.seed).fit(X[rows])


def fold_assignment(ctx: ScanContext, k: int, seed: int) -> np.ndarray:
    """Folds by group (near-duplicate groups stay together), balanced by a seeded permutation of groups."""
    groups = duplicate_groups(ctx).near
    rng = np.random.default_rng(seed)
    n_groups = int(groups.max()) + 1
    perm = rng.permutation(n_groups)
    return (perm[groups] % k).astype(np.int64)


def temperature(proba: np.ndarray, y: np.ndarray, seed: int) -> float:
    """Scalar temperature that minimises out-of-fold log loss: undoes boosting's overconfidence."""
    rng = np.random.default_rng(seed)
    sel = rng.choice(len(y), min(len(y), 50_000), replace=False)
    logp = np.log(np.clip(proba[sel], 1e-7, 1.0))
    ys = y[sel]

    def nll(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(lse - z[np.arange(len(ys)), ys]))

    res = minimize_scalar(nll, bounds=(-1.5, 1.5), method="bounded")
    return float(np.exp(res.x))


# Prior scale of each class's log-slope and bias in ``class_scaling``: Gelman et al.'s (2008) weakly informative
# scale for logistic coefficients, so a class's calibration departs from the shared temperature only as far as its
# own rows ask for.
CLASS_SCALING_PRIOR = 2.5


def class_scaling(proba: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class slope and bias on the log-probabilities (vector scaling, Guo et al. 2017), maximum a posteriori.

    One temperature serves the large classes; a rare class's column is another matter: its few training rows
    leave the held-out probabilities of its members too low (adult with race as the label, 2,000 rows: the 18
    'Amer-Indian-Eskimo' rows got a lower p of their own class than the other rows did, and 14 of them fell under
    the flag level of a null that trusts the column). The prior keeps each class at the shared temperature unless
    its rows ask otherwise. With two classes one column is the other's complement and the temperature is the
    whole family, so this is for three or more.
    """
    rng = np.random.default_rng(seed)
    sel = rng.choice(len(y), min(len(y), 50_000), replace=False)
    logp = np.log(np.clip(proba[sel], 1e-7, 1.0))
    ys = y[sel]
    n, k = logp.shape
    rows = np.arange(n)
    ridge = 1.0 / (CLASS_SCALING_PRIOR**2 * n)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = np.exp(theta[:k]), theta[k:]
        z = logp * a + b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1)
        loss = float(np.mean(np.log(s) - z[rows, ys])) + 0.5 * ridge * float(theta @ theta)
        g = e / s[:, None]
        g[rows, ys] -= 1.0
        g /= n
        grad = np.concatenate([(g * logp).sum(axis=0) * a, g.sum(axis=0)]) + ridge * theta
        return loss, grad

    res = minimize(objective, np.zeros(2 * k), jac=True, method="L-BFGS-B")
    return np.exp(res.x[:k]), res.x[k:]


def apply_class_scaling(proba: np.ndarray, slope: np.ndarray, bias: np.ndarray) -> np.ndarray:
    z = np.log(np.clip(proba, 1e-7, 1.0)) * slope + bias
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def apply_temperature(proba: np.ndarray, t: float) -> np.ndarray:
    z = np.log(np.clip(proba, 1e-7, 1.0)) / t
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_linear(M: np.ndarray, y: np.ndarray, train: np.ndarray, weight: np.ndarray | None, *, seed: int) -> Any:
    """Standardised multinomial logistic regression on the metric view (numbers robust-scaled and log-compressed,
    categories one-hot, text components), on at most ``LINEAR_MAX_ROWS`` rows; a fold with one class predicts it."""
    if len(train) > LINEAR_MAX_ROWS:
        train = np.sort(np.random.default_rng(seed).choice(train, LINEAR_MAX_ROWS, replace=False))
    if len(np.unique(y[train])) < 2:
        return DummyClassifier(strategy="prior").fit(M[train], y[train])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=300))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few more iterations would not move the ranking
        model.fit(
            M[train].astype(np.float64),
            y[train],
            logisticregression__sample_weight=None if weight is None else weight[train],
        )
    return model


def linear_share(boost: np.ndarray, linear: np.ndarray, y: np.ndarray) -> float:
    """The linear model's share of the blend: a half while its out-of-fold log loss is at most ``LINEAR_LOSS_RATIO``
    times boosting's, falling linearly to none at twice that ratio. A model that is confidently wrong across whole
    regions (an interaction no line draws) would otherwise clear the flipped rows there."""
    rows = np.arange(len(y))
    loss_boost = float(np.mean(-np.log(np.clip(boost[rows, y], 1e-6, 1.0))))
    loss_linear = float(np.mean(-np.log(np.clip(linear[rows, y], 1e-6, 1.0))))
    ratio = loss_linear / max(loss_boost, 1e-6)
    return 0.5 * float(np.clip((2.0 * LINEAR_LOSS_RATIO - ratio) / LINEAR_LOSS_RATIO, 0.0, 1.0))


@register("label_consistency")
class LabelConsistencyDetector(Detector):
    description = (
        "out-of-fold gradient boosting, averaged with a linear model, disagrees with the label "
        "(self-confidence, confident learning)"
    )
    weight = 4.0
    gated = False
    constraints: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {
        "n_folds": (lambda v: positive_int(v) and v >= 2, "an integer >= 2"),
        "max_iter": (positive_int, "a positive integer"),
        "max_train_rows": (positive_int, "a positive integer"),
        "passes": (positive_int, "a positive integer"),
        "linear": (lambda v: isinstance(v, bool), "true or false"),
    }

    def _fit(self, ctx: ScanContext) -> None:
        ctx.encode()
        y, n_classes = ctx.y, ctx.data.n_classes
        k = int(self.param("n_folds", n_folds_for(ctx.n)))
        cap = int(self.param("max_train_rows", train_cap_for(ctx.n)))
        passes = int(self.param("passes", passes_for(ctx.n)))
        cat = np.asarray(ctx.encoder.tree_categorical, dtype=bool)
        prior = np.bincount(y, minlength=n_classes) / len(y)
        self.models = []
        self.linear_models = []
        self.linear_shares_: list[float] = []
        total = np.zeros((ctx.n, n_classes), dtype=np.float64)
        # A group of near-copies counts once: a flood's weight of numbers would otherwise teach the fold models
        # its label around every copied point, and the other floods' out-of-fold predictions would agree with it.
        group = duplicate_groups(ctx).near
        size = np.bincount(group)[group]
        copies = None if (size == 1).all() else 1.0 / size
        weight = copies
        # On small data OpenMP's fork/join costs more than it saves, and it degrades badly when other processes
        # share the CPU (CI runners, parallel tests): boost single-threaded there.
        threads = 1 if ctx.n * ctx.tree_X.shape[1] <= SINGLE_THREAD_CELLS else None
        self.reducer_ = embedding_reducer(ctx)
        view = ctx.tree_X if self.reducer_ is None else self.reducer_.transform(ctx.tree_X)
        if self.reducer_ is not None:
            cat = np.zeros(view.shape[1], dtype=bool)
        # weighted fits (a second pass, or groups of copies) bin once here; unweighted ones keep boosting's own
        # binning and spare the copy of the data
        weighted = passes > 1 or copies is not None
        self.bin_edges_ = boosting_bin_edges(view, cat, seed=ctx.seed) if weighted else None
        binned = view if self.bin_edges_ is None else apply_bin_edges(view, self.bin_edges_)
        with (
            threadpool_limits(limits=threads, user_api="openmp"),
            ctx.progress.task("label model (cross-fitted boosting + linear)", total=k * passes) as advance,
        ):
            for r in range(passes):
                boost, linear = self._cross_fit(
                    ctx, binned, k, cap, cat, prior, weight, seed=ctx.seed + 101 * r, advance=advance
                )
                w = 0.0 if linear is None else linear_share(boost, linear, y)
                self.linear_shares_.append(w)
                proba = boost if linear is None else (1.0 - w) * boost + w * linear
                total += proba
                # the next pass trusts each row as much as this one believes its label: likely poison weighs
                # little, so it pulls the next model less toward itself
                weight = proba[np.arange(ctx.n), y] * (1.0 if copies is None else copies)
        proba = total / passes
        self.temperature_ = temperature(proba, y, ctx.seed)
        proba = apply_temperature(proba, self.temperature_)
        self.scaling_ = class_scaling(proba, y, ctx.seed) if n_classes >= 3 else None
        if self.scaling_ is not None:
            proba = apply_class_scaling(proba, *self.scaling_)
        self.proba_ = proba
        ctx.cache["oof_proba"] = proba
        self_conf = proba[np.arange(ctx.n), y]
        self.thresholds_ = np.array([self_conf[y == j].mean() if (y == j).any() else 1.0 for j in range(n_classes)])
        self.null_ = ClassProbabilityNull.fit(proba)
        self.info = {
            "n_folds": k,
            "passes": passes,
            "train_rows_per_fold_at_most": cap,
            "linear_share": [round(w, 3) for w in self.linear_shares_],
            "temperature": round(self.temperature_, 3),
            **(
                {}
                if self.scaling_ is None
                else {
                    "class_slopes": self.scaling_[0].round(3).tolist(),
                    "class_biases": self.scaling_[1].round(3).tolist(),
                }
            ),
            "cl_thresholds": self.thresholds_.round(3).tolist(),
            "boosting_reads": "all features"
            if self.reducer_ is None
            else f"{EMBEDDING_TREE_DIMS} principal components of the embedding",
        }

    def _cross_fit(
        self,
        ctx: ScanContext,
        X: np.ndarray,
        k: int,
        cap: int,
        cat: np.ndarray,
        prior: np.ndarray,
        weight: np.ndarray | None,
        *,
        seed: int,
        advance: Callable[[int], None],
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Out-of-fold probabilities of boosting (on ``X``, the tree view, binned for weighted fits) and of the linear model (None
        when it is switched off)."""
        y, n_classes = ctx.y, ctx.data.n_classes
        folds = fold_assignment(ctx, k, seed)
        rng = np.random.default_rng(seed + 1)
        use_linear = bool(self.param("linear", True))
        proba = np.zeros((ctx.n, n_classes), dtype=np.float64)
        proba_linear = np.zeros((ctx.n, n_classes), dtype=np.float64) if use_linear else None
        for f in range(k):
            train = np.flatnonzero(folds != f)
            test = np.flatnonzero(folds == f)
            if len(train) > cap:
                train = np.sort(rng.choice(train, cap, replace=False))
            model = HistGradientBoostingClassifier(
                max_iter=int(self.param("max_iter", 100)),
                categorical_features=cat if cat.any() else None,
                early_stopping=boosting_early_stopping(y[train]),
                l2_regularization=BOOST_L2,
                random_state=seed + f,
            )
            model.fit(X[train], y[train], sample_weight=None if weight is None else weight[train])
            linear = fit_linear(ctx.metric_X, y, train, weight, seed=seed + f) if use_linear else None
            for start in range(0, len(test), 200_000):
                part = test[start : start + 200_000]
                # a class the fold never saw keeps its prior share instead of exactly zero
                p = self._expand(model, model.predict_proba(X[part]), n_classes)
                proba[part] = 0.999 * p + 0.001 * prior
                if linear is not None and proba_linear is not None:
                    q = self._expand(linear, linear.predict_proba(ctx.metric_X[part]), n_classes)
                    proba_linear[part] = 0.999 * q + 0.001 * prior
            self.models.append(model)
            self.linear_models.append(linear)
            advance(1)
        return proba, proba_linear

    @staticmethod
    def _expand(model: Any, p: np.ndarray, n_classes: int) -> np.ndarray:
        if p.shape[1] == n_classes:
            return p
        out = np.zeros((len(p), n_classes))
        out[:, model.classes_] = p
        return out

    def _predict(self, r: int, f: int, X: np.ndarray, M: np.ndarray, n_classes: int) -> np.ndarray:
        """Pass ``r``'s blend of boosting's and the linear model's class probabilities, from fold ``f``'s models."""
        k = self.info["n_folds"]
        model, linear = self.models[r * k + f], self.linear_models[r * k + f]
        p = self._expand(model, model.predict_proba(X), n_classes)
        w = self.linear_shares_[r]
        if linear is None or w == 0.0:
            return p
        return (1.0 - w) * p + w * self._expand(linear, linear.predict_proba(M), n_classes)

    def _transfer(self, reference: ScanContext, ctx: ScanContext) -> None:
        """Class probabilities of the new rows from the trusted fold models. Each new row gets, per pass, the
        model of one seeded random fold, as a trusted row gets the model of its own fold: the new rows' scores
        then follow the trusted rows' out-of-fold distribution when the new data is clean (averaging every fold
        model would make them smoother, and a batch test against the trusted scores would be biased)."""
        k, passes, n_classes = self.info["n_folds"], self.info["passes"], reference.data.n_classes
        prior = np.bincount(reference.y, minlength=n_classes) / len(reference.y)
        rng = np.random.default_rng(ctx.seed + 211)
        proba = np.zeros((ctx.n, n_classes), dtype=np.float64)
        view = ctx.tree_X if self.reducer_ is None else self.reducer_.transform(ctx.tree_X)
        binned = view if self.bin_edges_ is None else apply_bin_edges(view, self.bin_edges_)
        for r in range(passes):
            fold = rng.integers(0, k, size=ctx.n)
            for f in range(k):
                rows = np.flatnonzero(fold == f)
                if rows.size:
                    p = self._predict(r, f, binned[rows], ctx.metric_X[rows], n_classes)
                    proba[rows] += 0.999 * p + 0.001 * prior
        self.proba_ = apply_temperature(proba / passes, self.temperature_)
        if self.scaling_ is not None:
            self.proba_ = apply_class_scaling(self.proba_, *self.scaling_)
        ctx.cache["oof_proba"] = self.proba_

    def expected_flags_by_class(self, level: float, n_classes: int) -> np.ndarray | None:
        """The label model's own doubt, class by class: were each row's label drawn from its probabilities, it
        would carry class c with probability p_c and be flagged where p_c's p-value is at most ``level``. Summed,
        that is the null's ``level`` times the rows; split by class it falls where the model is least sure, on
        fraud-like data almost all on the rare class (bank_marketing with 1% 'yes': about 100 of its 258 rows)."""
        P = self.proba_
        counted = self.null_.pvalue(P.ravel()).reshape(P.shape) <= level
        return np.where(counted, P, 0.0).sum(axis=0)[:n_classes]

    def _score(self, ctx: ScanContext, rows: np.ndarray) -> DetectorOutput:
        y = ctx.y[rows]
        P = self.proba_[rows]
        p_obs = P[np.arange(len(rows)), y]
        pv = self.null_.pvalue(p_obs)
        other = P.copy()
        other[np.arange(len(rows)), y] = -1.0
        best = other.argmax(axis=1)
        p_best = other[np.arange(len(rows)), best]
        confident = p_best >= self.thresholds_[best]
        classes = ctx.data.classes

        def build(i: np.ndarray) -> np.ndarray:
            obs = quote(classes[y[i]])
            txt = (
                "labelled "
                + obs
                + " but the out-of-fold model gives "
                + obs
                + " "
                + fmt_prob(p_obs[i])
                + " (most likely "
                + quote(classes[best[i]])
                + " "
                + fmt_prob(p_best[i])
                + ")"
            )
            txt = txt + np.where(confident[i], "; confidently another class (confident learning)", "")
            return np.where(p_best[i] > p_obs[i], txt, "")

        reasons = explain(pv, build)
        return DetectorOutput(
            scores=1.0 - p_obs,
            pvalues=pv,
            reasons=reasons,
            extra={"label_issue": confident & (p_best > p_obs), "p_observed": p_obs},
        )
