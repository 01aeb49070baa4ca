"""A job refunded for waiting too long in the queue: its stored reason is said again in the
reader's language by the failure notice."""

from __future__ import annotations

from core.i18n import for_locale, load_catalogs
from core.queue.dispatch import expiry_reason, known_reason


def test_the_stored_english_reason_is_found_again_and_said_in_french() -> None:
    """What is stored is English; the notice finds its message and says it in French."""
    load_catalogs()
    for out_of_credits in (False, True):
        stored = str(expiry_reason(1800, out_of_credits=out_of_credits))
        assert stored.startswith("it waited in the queue for more than 30 minutes")
        message = known_reason(stored, 1800)
        assert message is not None
        french = for_locale("fr")(message)
        assert "file d'attente" in french and "30" in french


def test_another_reason_is_not_taken_for_an_expiry() -> None:
    """A reason the service wrote stays as it was (quoted), not re-said."""
    assert known_reason("The service lost the task", 1800) is None
    assert known_reason(str(expiry_reason(60, out_of_credits=False)), 1800) is None
