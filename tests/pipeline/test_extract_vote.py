from __future__ import annotations

import pytest

from proxy.pipeline.extract import (extract_letter, extract_number, extractor_for,
                                    make_regex_extractor, normalize_number)
from proxy.pipeline.vote import MajorityVote, majority


@pytest.mark.parametrize("text, want", [
    ("The answer is 42.", "42"),
    ("First 3 + 4 = 7, so the answer is 1,234.", "1234"),
    (r"Thus \boxed{17} apples; 3 were eaten.", "17"),
    (r"\boxed{\frac{3}{4}}", "0.75"),
    ("The answer is 5/2", "2.5"),
    ("It is 1/3 of the cake", "1/3"),
    ("Total: $2.50", "2.5"),
    ("It costs $1,000,000 in total", "1000000"),
    ("The temperature is -5 degrees", "-5"),
    ("The temperature is −5 degrees", "-5"),
    ("A rise of 50%", "50"),
    ("2.500 litres", "2.5"),
    ("Answer: 7 (not 8)", "7"),
    ("I cannot work that out from the information given.", None),
])
def test_number(text: str, want: str | None) -> None:
    assert extract_number(text) == want


@pytest.mark.parametrize("text, want", [
    ("The correct option is B.", "B"),
    ("The best choice here is C.", "C"),
    ("I think (D) is right", "D"),
    ("A) because it is larger", "A"),
    ("The answer is (b)", None),  # lowercase after a phrase is prose, not a letter
    ("answer: D", "D"),
    ("B", "B"),
    ("I am not sure.", None),
    ("Option A looks tempting but the answer is C", "C"),
])
def test_letter(text: str, want: str | None) -> None:
    assert extract_letter(text) == want


def test_regex_extractor_normalises_and_requires_match() -> None:
    ex = make_regex_extractor(r"Final:\s*(.+)")
    assert ex("blah\nFinal:  Paris. ") == "paris"
    assert ex("no marker") is None
    assert extractor_for("regex", r"X=(\d+)")("X=3 then X=4") == "4"
    with pytest.raises(ValueError):
        extractor_for("regex", None)


def test_normalize_number_equivalences() -> None:
    assert normalize_number("5/2") == normalize_number("2.50") == "2.5"
    assert normalize_number("abc") is None


def test_vote_tie_goes_to_first_to_reach_top_count() -> None:
    assert majority(["3", "4", "4", "3"]) == "4"  # 4 reached 2 first
    assert majority(["3", "4"]) == "3"
    assert majority([None, None]) is None
    assert majority([None, "5", "6", "6"]) == "6"


def test_early_stop_is_exact() -> None:
    vote = MajorityVote()
    for i, a in enumerate(["7", "7", "8"]):
        vote.add(a, i)
    assert vote.decided(pending=1)       # 2 >= 1 + 1: 8 can only tie, and ties keep 7
    assert not vote.decided(pending=2)   # 8 could reach 3 before 7 does
    vote.add(None, 3)
    assert vote.abstained == 1
    empty = MajorityVote()
    assert not empty.decided(pending=0) and not empty.decided(pending=3)


def test_early_stop_never_changes_the_winner() -> None:
    import itertools
    for seq in itertools.product(["a", "b", None], repeat=6):
        vote = MajorityVote()
        for i, ans in enumerate(seq):
            vote.add(ans, i)
            if vote.decided(pending=len(seq) - i - 1):
                assert vote.leader == majority(seq), seq
                break
