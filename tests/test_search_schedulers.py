"""The schedulers' decisions against hand-worked examples: ASHA's promotions, Hyperband's brackets, the median
rule, the curve rule."""

import pytest

from nasrun.checks import UserError
from nasrun.contracts import Decision, Scheduler
from nasrun.search.asha import ASHA, Hyperband, bracket_count, rung_levels
from nasrun.search.curves import probability_above
from nasrun.search.stopping import CurveStopping, MedianStopping


def test_rungs_and_bracket_counts_are_integer_exact():
    assert rung_levels(1, 9, 3) == [1, 3, 9]
    assert rung_levels(1, 10, 3) == [1, 3, 9, 10]
    assert rung_levels(2, 9, 2) == [2, 4, 8, 9]
    # log(243) / log(3) is 4.999... in floating point: an off-by-one there gives 5 brackets (optuna#6835).
    assert bracket_count(1, 81, 3) == 5
    assert bracket_count(1, 243, 3) == 6
    assert bracket_count(1, 9, 3) == 3
    assert bracket_count(1, 10, 3) == 3
    assert len(Hyperband(81).brackets) == 5 and len(Hyperband(243).brackets) == 6
    assert [b.levels[0] for b in Hyperband(243).brackets] == [1, 3, 9, 27, 81, 243]


def test_asha_promotes_the_top_third_as_results_arrive():
    """η=3, rungs 1-3-9, promote mode. Results reach rung 1 one at a time, in this order:
    a=60, b=70, c=50: 3 results, top 3//3 = 1 -> b is promoted (to 3 epochs).
    d=80: 4 results, top 1 is d -> d promoted.
    e=40, f=65: 6 results, top 2 = {d, b}: both already promoted -> nothing; a new trial starts instead.
    b reports 72 at rung 3, d 90: 2 results at rung 3, top 0 -> nothing from rung 3 yet.
    g=75: 7 results, top 2 still {d, b}; h=76, i=77: 9 results, top 3 = {d, i, h} -> i promoted (the best
    not promoted yet; b, promoted earlier, has since fallen out of the top third: promotions are never undone).
    i reports 95 at rung 3: 3 results, top 1 = i -> i promoted to 9 (the highest rung goes first), then h."""
    asha = ASHA(9, 1, 3)
    assert isinstance(asha, Scheduler)
    for key in "abcdefghi":
        assert asha.start(key) == 1

    def rung1(key, value):
        assert asha.report(key, [value]) == (Decision.PAUSE, 1)

    rung1("a", 60), rung1("b", 70)
    assert asha.promotion() is None  # 2 results: top 2//3 = 0
    rung1("c", 50)
    assert asha.promotion() == ("b", 3)
    assert asha.promotion() is None  # b is on its way; nobody else is in the top third
    rung1("d", 80)
    assert asha.promotion() == ("d", 3)
    rung1("e", 40), rung1("f", 65)
    assert asha.promotion() is None
    assert asha.report("b", [70, 71, 72]) == (Decision.PAUSE, 3)
    assert asha.report("d", [80, 85, 90]) == (Decision.PAUSE, 3)
    assert asha.promotion() is None
    rung1("g", 75), rung1("h", 76), rung1("i", 77)
    assert asha.promotion() == ("i", 3)
    assert asha.report("i", [77, 90, 95]) == (Decision.PAUSE, 3)
    assert asha.promotion() == ("i", 9)
    assert asha.report("i", [77, 90, 95, 96, 96, 97, 97, 98, 98]) == (Decision.FINISHED, 9)
    assert asha.promotion() == ("h", 3)
    assert asha.promotion() is None
    assert asha.occupancy() == {1: 9, 3: 3, 9: 1}


def test_asha_stop_mode_goes_on_or_ends_at_each_rung():
    asha = ASHA(9, 1, 3, mode="stop")
    for key in "abcd":
        asha.start(key)
    assert asha.report("a", [60]) == (Decision.CONTINUE, 3)  # alone at the rung: it is its own top third
    assert asha.report("b", [50]) == (Decision.STOP, 1)
    assert asha.report("c", [70]) == (Decision.CONTINUE, 3)
    assert asha.report("d", [55]) == (Decision.STOP, 1)
    assert asha.report("a", [60, 61, 62]) == (Decision.CONTINUE, 9)
    assert asha.report("c", [70, 70, 61]) == (Decision.STOP, 3)
    assert asha.report("a", [60] * 9) == (Decision.FINISHED, 9)
    assert asha.promotion() is None


def test_hyperband_assigns_brackets_in_the_synchronous_proportions():
    hb = Hyperband(9, 1, 3)  # brackets start at 1, 3, 9 with shares 9, 5, 3 (synchronous Hyperband's n_s)
    assert hb.weights == [9, 5, 3]
    firsts = [hb.start(f"t{i}") for i in range(17)]
    assert sorted(firsts).count(1) == 9 and firsts.count(3) == 5 and firsts.count(9) == 3
    assert hb.start("again") == 1  # the cycle starts over, deterministically
    assert Hyperband(9, brackets=1).weights == [9]
    with pytest.raises(ValueError, match="brackets"):
        Hyperband(9, brackets=4)


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="min_epochs=9: must be below max_epochs"):
        ASHA(9, 9)
    with pytest.raises(ValueError, match="reduction_factor"):
        ASHA(9, 1, 1)
    with pytest.raises(ValueError, match="mode"):
        ASHA(9, mode="halve")
    with pytest.raises(ValueError, match="raise budget.epochs"):
        MedianStopping(1)
    with pytest.raises(ValueError, match="threshold"):
        CurveStopping(9, threshold=1.5)


def test_median_rule_on_hand_made_curves():
    rule = MedianStopping(4, grace_epochs=2, min_trials=3)
    finished = {"a": [50, 60, 70, 80], "b": [40, 50, 60, 70], "c": [60, 70, 80, 90]}
    for key, curve in finished.items():
        assert rule.start(key) == 2
        assert rule.report(key, curve[:2]) == (Decision.CONTINUE, 3)  # fewer than 3 finished: nothing stops
        assert rule.report(key, curve[:3]) == (Decision.CONTINUE, 4)
        assert rule.report(key, curve) == (Decision.FINISHED, 4)
    # Running averages at epoch 2: a 55, b 45, c 65 -> median 55; at epoch 3: 60, 50, 70 -> 60.
    rule.start("low")
    assert rule.report("low", [54, 54]) == (Decision.STOP, 2)  # best 54 < 55
    rule.start("edge")
    assert rule.report("edge", [30, 55]) == (Decision.CONTINUE, 3)  # best 55 is not below the median
    assert rule.report("edge", [30, 55, 59]) == (Decision.STOP, 3)  # best 59 < 60
    assert rule.occupancy() == {2: 1, 3: 1, 4: 3}


def test_curve_rule_stops_a_flat_curve_and_keeps_a_rising_one():
    flat = [50.0, 50.5, 49.8, 50.2]
    rising = [30.0, 50.0, 60.0, 66.0]
    assert probability_above([v / 100 for v in flat], 9, 0.8) < 1e-6
    assert probability_above([v / 100 for v in rising], 9, 0.72) > 0.3
    rule = CurveStopping(9, min_epochs=4, threshold=0.05)
    rule.start("first")
    assert rule.report("first", rising) == (Decision.CONTINUE, 5)  # nothing finished yet to beat
    rule.finished.append([40, 55, 62, 68, 71, 73, 74, 75, 75])  # best finished: 75 at epoch 9
    rule.start("flat")
    assert rule.report("flat", flat) == (Decision.STOP, 4)
    rule.start("rising")
    assert rule.report("rising", [30.0, 50.0, 60.0, 68.0])[0] is Decision.CONTINUE
    # The same curve always gives the same answer (no sampling): a replay decides alike.
    assert probability_above([0.3, 0.5, 0.6], 9, 0.7) == probability_above([0.3, 0.5, 0.6], 9, 0.7)


def test_a_replayed_trial_keeps_the_bracket_its_log_shows_and_foreign_rungs_are_refused():
    hb = Hyperband(9, 1, 3)
    assert hb.start("a") == 1  # the round robin puts it in the first bracket...
    assert hb.report("a", [50.0, 55.0, 60.0]) == (Decision.PAUSE, 3)  # ...but its log starts it at 3 epochs
    assert hb.bracket_of["a"] is hb.brackets[1] and hb.occupancy()[3] == 1
    asha = ASHA(9, 1, 3)
    asha.start("b")
    with pytest.raises(UserError, match="2 epochs, which is not a rung of this scheduler \\(1, 3, 9\\)"):
        asha.report("b", [50.0, 51.0])
