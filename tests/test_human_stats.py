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
