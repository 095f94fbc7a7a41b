"""Human evaluation's statistics against reference libraries, on ratings that leave grades unused:
scikit-learn 1.9 and statsmodels 0.15.0 (Cohen's and Fleiss' kappa), krippendorff 0.8 (alpha),
scipy (Spearman)."""
import json

import numpy as np
import pytest

from fmeval.human.job import Job, create_job
from fmeval.human.results import write_results
from tests.test_human import make_runs

# three raters grade the same eight outputs on 1..5; nobody gives a 3, rater3 never gives a 1
GRADES = {"rater1": [1, 2, 2, 4, 5, 5, 4, 1],
          "rater2": [1, 2, 4, 4, 5, 4, 4, 2],
          "rater3": [2, 2, 4, 5, 5, 4, 5, 2]}


def graded_job(tmp_path, grades=GRADES, kinds="likert:5"):
    runs = make_runs(tmp_path, items=len(next(iter(grades.values()))))[:1]
    create_job(tmp_path / "job", runs=runs, kinds=kinds, instructions="Grade", raters=len(grades),
               per_item=len(grades))
    job = Job(tmp_path / "job")
    items = sorted(job.items(), key=lambda item: item["record_id"])
    for rater, values in grades.items():
        for item, grade in zip(items, values):
            job.save_rating(rater, item["item_id"], {"likert:5": [grade]})
    job.close()
    return [item["record_id"] for item in items]


def test_cohen_kappa_counts_distances_on_the_whole_scale(tmp_path):
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import cohens_kappa

    graded_job(tmp_path)
    summary = write_results(tmp_path / "job", tmp_path / "results", n_bootstrap=50)
    kappas = summary.config["agreement"]["cohen_kappa"]["likert:5"]
    for pair, kappa in kappas.items():
        a, b = pair.split("|")
        expected = cohen_kappa_score(GRADES[a], GRADES[b], labels=[1, 2, 3, 4, 5], weights="linear")
        table = np.zeros((5, 5))
        for x, y in zip(GRADES[a], GRADES[b]):
            table[x - 1, y - 1] += 1
        assert kappa == pytest.approx(expected, abs=1e-12)
        assert kappa == pytest.approx(cohens_kappa(table, wt="linear").kappa, abs=1e-12)
        # the old call, without the scale, gives another number: this data catches it
        assert abs(kappa - cohen_kappa_score(GRADES[a], GRADES[b], weights="linear")) > 1e-3
    assert len(kappas) == 3


def test_krippendorff_alpha_equals_the_package_with_unused_grades(tmp_path):
    import krippendorff

    graded_job(tmp_path)
    summary = write_results(tmp_path / "job", tmp_path / "results", n_bootstrap=50)
    expected = krippendorff.alpha(reliability_data=np.array(list(GRADES.values()), dtype=float),
                                  level_of_measurement="ordinal", value_domain=[1, 2, 3, 4, 5])
    assert summary.score("krippendorff_alpha_likert").value == pytest.approx(expected, abs=1e-12)


def test_fleiss_kappa_equals_statsmodels(tmp_path):
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    graded_job(tmp_path)
    summary = write_results(tmp_path / "job", tmp_path / "results", n_bootstrap=100)
    table, _ = aggregate_raters(np.array(list(GRADES.values())).T, n_cat=None)
    score = summary.score("fleiss_kappa_likert")
    assert score.value == pytest.approx(fleiss_kappa(table, method="fleiss"), abs=1e-12)
    assert score.ci_lower <= score.value <= score.ci_upper


def test_fleiss_kappa_with_different_raters_per_item_equals_statsmodels(tmp_path):
    """Four raters, two per item: Fleiss' kappa needs the same number of raters per item, not the same raters."""
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    runs = make_runs(tmp_path, items=6)[:1]
    create_job(tmp_path / "job", runs=runs, kinds="thumbs", instructions="Right?", raters=4, per_item=2, seed=3)
    job = Job(tmp_path / "job")
    given = []
    for n, item in enumerate(job.items()):
        raters = [r for r in job.raters() if job.assignment(r, item["item_id"])]
        thumbs = [n % 2, 1 if n < 4 else n % 2]  # agree on some items, not on others
        given.append(thumbs)
        for rater, thumb in zip(raters, thumbs):
            job.save_rating(rater, item["item_id"], {"thumbs": [thumb]})
    job.close()
    summary = write_results(tmp_path / "job", tmp_path / "results", n_bootstrap=50)
    table, _ = aggregate_raters(np.array(given), n_cat=2)
    assert summary.score("fleiss_kappa_thumbs").value == pytest.approx(fleiss_kappa(table), abs=1e-12)


def test_a_rater_who_disagrees_with_the_others_is_flagged(tmp_path):
    import krippendorff

    contrary = {**GRADES, "rater4": [5, 4, 4, 2, 1, 1, 2, 5]}
    graded_job(tmp_path, contrary)
    summary = write_results(tmp_path / "job", tmp_path / "results", n_bootstrap=20)
    quality = summary.config["rater_quality"]
    for rater in contrary:
        others = np.array([grades for name, grades in contrary.items() if name != rater], dtype=float)
        expected = krippendorff.alpha(reliability_data=others, level_of_measurement="ordinal")
        assert quality[rater]["alpha_without"]["likert:5"] == pytest.approx(expected, abs=1e-12)
    assert [rater for rater, q in quality.items() if q["flagged"]] == ["rater4"]
    assert "alpha is" in quality["rater4"]["flagged"] and "without rater4" in quality["rater4"]["flagged"]
    assert quality["rater1"]["items_rated"] == 8 and quality["rater1"]["gold_accuracy"] is None
