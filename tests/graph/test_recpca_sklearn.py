"""RecPCA as a scikit-learn estimator: check_estimator, clone, Pipeline, GridSearchCV and
cross-validation with the graph sliced on both axes, set_output, feature names."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import check_estimator

from tfllmer_fast import RecPCA, make_synthetic_catalogue
from tfllmer_fast.graph import cooccurrence
from tfllmer_fast.graph.recpca import graph_for_rows

# Every check that does not pass, and why. check_estimator is told to expect exactly these:
# it fails if one of them passes, so the list cannot go stale.
EXPECTED_FAILED = {
    "check_transformer_n_iter": (
        "n_iter_ counts Lanczos restarts; the small data of the checks go to the dense "
        "eigensolver (ncv > D / 2), which does not iterate, so n_iter_ is 0 there"
    ),
}
# Checks skipped by scikit-learn itself (their reason comes with the result).
SKIPPED = {"check_array_api_input"}  # needs SCIPY_ARRAY_API=1; RecPCA's kernels take numpy only


class ChainGraphRecPCA(RecPCA):
    """RecPCA whose fit builds the graph of its rows (a path: row i next to i + 1): the
    checks call fit(X, y) only, so this is how they reach the graph path."""

    def fit(self, X, y=None):
        n = np.asarray(X).shape[0] if not hasattr(X, "shape") else X.shape[0]
        ones = np.ones(max(n - 1, 0))
        A = sp.csr_array(sp.diags_array([ones, ones], offsets=[1, -1], shape=(n, n)))
        return super().fit(X, y, graph=A)

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)


@pytest.mark.parametrize(
    "estimator",
    [RecPCA(n_components=2, lam=0), ChainGraphRecPCA(n_components=2, lam=0.5)],
    ids=["lam0", "path-graph-lam0.5"],
)
def test_check_estimator(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning inside a check is a failure here
        results = check_estimator(estimator, expected_failed_checks=EXPECTED_FAILED, on_fail=None, on_skip=None)
    by_status = {}
    for r in results:
        by_status.setdefault(r["status"], set()).add(r["check_name"])
    assert by_status.get("failed", set()) == set(), [r for r in results if r["status"] == "failed"]
    assert by_status.get("xfail", set()) == set(EXPECTED_FAILED)
    assert by_status.get("skipped", set()) <= SKIPPED
    assert len(by_status["passed"]) >= 40


def _catalogue(n_items=240, dim=24, seed=0):
    cat = make_synthetic_catalogue(n_users=600, n_items=n_items, dim=dim, seed=seed)
    A = cooccurrence(cat.sequences, window=3)
    return cat.embeddings.astype(np.float64), A, cat.collab_labels


def test_clone_params_and_repr():
    est = RecPCA(8, lam=0.3, solver="gram")
    assert est.get_params()["lam"] == 0.3 and est.get_params()["n_components"] == 8
    assert repr(est) == "RecPCA(lam=0.3, n_components=8, solver='gram')"  # changed parameters only
    X, A, _ = _catalogue()
    est.fit(X, graph=A)
    twin = clone(est)
    assert twin.get_params() == est.get_params() and not hasattr(twin, "components_")
    twin.set_params(lam=0.7)
    assert twin.lam == 0.7 and est.lam == 0.3
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.transform(X), est.transform(X))


def test_graph_as_positional_y_is_refused():
    X, A, _ = _catalogue()
    with pytest.raises(TypeError, match=r"graph=A"):
        RecPCA(4).fit(X, A)
    with pytest.raises(ValueError, match="needs a graph"):
        RecPCA(4, lam=0.5).fit(X)
    RecPCA(4, lam=0).fit(X)  # plain PCA needs none


def test_item_ids_slice_the_graph():
    X, A, _ = _catalogue()
    rng = np.random.default_rng(1)
    ids = np.sort(rng.choice(X.shape[0], 150, replace=False))
    want = A[ids][:, ids].toarray()
    # a whole-catalogue graph, and one whose rows were already sliced with X (as CV does)
    for graph in (A, A[ids]):
        got = graph_for_rows(graph, ids, ids.size, 0.5, 1)
        np.testing.assert_array_equal(got.toarray(), want)
    ref = RecPCA(6, lam=0.5).fit(X[ids], graph=sp.csr_array(want))
    est = RecPCA(6, lam=0.5).fit(X[ids], graph=A, item_ids=ids)
    np.testing.assert_array_equal(est.components_, ref.components_)
    for bad, match in [
        (ids[:-1], "one id per row"),
        (np.r_[ids[:-1], ids[0]], "distinct"),
        (np.r_[ids[:-1], 10_000], r"lie in \[0, 240\)"),
        (ids.astype(float), "integers"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            RecPCA(6, lam=0.5).fit(X[ids], graph=A, item_ids=bad)
    with pytest.raises(ValueError, match="one row per row of X"):
        RecPCA(6, lam=0.5).fit(X[ids], graph=A[ids[:100]], item_ids=ids)


def _pipeline(lam=0.5):
    return Pipeline([("recpca", RecPCA(8, lam=lam)), ("clf", LogisticRegression(max_iter=300))])


def test_cross_validation_slices_the_graph_on_both_axes():
    # Every fold's RecPCA must equal a fit on that fold's rows with the fold's own graph.
    X, A, y = _catalogue()
    ids = np.arange(X.shape[0])
    cv = KFold(3, shuffle=True, random_state=0)
    out = cross_validate(
        _pipeline(), X, y, cv=cv, params={"recpca__graph": A, "recpca__item_ids": ids}, return_estimator=True
    )
    for (train, _), fitted in zip(cv.split(X), out["estimator"]):
        ref = RecPCA(8, lam=0.5).fit(X[train], graph=A[train][:, train])
        np.testing.assert_array_equal(fitted.named_steps["recpca"].components_, ref.components_)


def test_grid_search_over_lam():
    X, A, y = _catalogue()
    ids = np.arange(X.shape[0])
    grid = GridSearchCV(_pipeline(), {"recpca__lam": [0.0, 0.5, 1.0]}, cv=3)
    grid.fit(X, y, recpca__graph=A, recpca__item_ids=ids)
    assert grid.best_params_["recpca__lam"] in (0.0, 0.5, 1.0)
    scores = grid.cv_results_["mean_test_score"]
    assert np.all((0 <= scores) & (scores <= 1)) and len(set(np.round(scores, 12))) > 1
    # refit on all rows: the whole graph
    best = grid.best_estimator_.named_steps["recpca"]
    ref = RecPCA(8, lam=grid.best_params_["recpca__lam"]).fit(X, graph=A)
    np.testing.assert_array_equal(best.components_, ref.components_)


def test_grid_search_with_metadata_routing():
    X, A, y = _catalogue()
    ids = np.arange(X.shape[0])
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = Pipeline(
            [
                ("recpca", RecPCA(8).set_fit_request(graph=True, item_ids=True)),
                ("clf", LogisticRegression(max_iter=300)),
            ]
        )
        grid = GridSearchCV(pipe, {"recpca__lam": [0.0, 1.0]}, cv=3).fit(X, y, graph=A, item_ids=ids)
        plain = GridSearchCV(_pipeline(), {"recpca__lam": [0.0, 1.0]}, cv=3)
    with sklearn.config_context(enable_metadata_routing=False):
        plain.fit(X, y, recpca__graph=A, recpca__item_ids=ids)
    np.testing.assert_allclose(grid.cv_results_["mean_test_score"], plain.cv_results_["mean_test_score"])


def test_set_output_pandas_and_feature_names():
    pd = pytest.importorskip("pandas")
    X, A, _ = _catalogue()
    cols = [f"e{j}" for j in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=cols, index=pd.RangeIndex(100, 100 + X.shape[0]))
    est = RecPCA(5, lam=0.5).set_output(transform="pandas")
    Z = est.fit_transform(frame, graph=A)
    assert list(Z.columns) == [f"recpca{k}" for k in range(5)] == list(est.get_feature_names_out())
    assert Z.index.equals(frame.index)
    assert list(est.feature_names_in_) == cols and est.n_features_in_ == X.shape[1]
    np.testing.assert_allclose(Z.to_numpy(), RecPCA(5, lam=0.5).fit_transform(X, graph=A))
    with pytest.warns(UserWarning, match="feature names"):
        est.transform(X)  # fitted with names, given none
