"""The mutation check's list stays in step with the code: every mutant's text occurs exactly once where it
says (``python tools/mutate.py`` runs the mutants themselves; it takes minutes, so CI only checks this)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import mutate  # noqa: E402


@pytest.mark.parametrize("mutant", mutate.MUTANTS, ids=lambda mutant: mutant.name)
def test_mutant_applies_to_the_current_code(mutant):
    assert mutate.stale(mutant) is None
    assert mutant.original != mutant.replacement
    for path in mutant.tests:
        assert path.startswith("-") or (mutate.ROOT / path.split("::")[0]).exists()


def test_at_least_forty_mutants():
    assert len(mutate.MUTANTS) >= 40
