"""Cards, posts and buttons in the server's language (botkit.cards, botkit.views): the
French server's card, post and buttons; the pseudo-locale finds no English on them."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import discord

from botkit.cards import delivery_embed, job_line, status_card
from botkit.views import cancel_view, result_view
from core.i18n import PSEUDO_LOCALE, for_locale
from core.queue import CardInfo
from storage.models import Job, JobState

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
JOB = Job(
    id=42, guild_id=1, channel_id=2, user_id=3, interaction_id=None, progress_message_id=None,
    mode="image-to-video", prompt="a horse", image_url=None, duration=5, aspect_ratio="16:9",
    quality="std", sound=True, cost=2, task_id=None, state=JobState.QUEUED, attempts=0,
    next_poll_at=None, delivering_until=None, delivery_nonce="n", result_url=None,
    delivered_message_id=None, last_error=None, created_at=T0, updated_at=T0,
    submitted_at=None, completed_at=None, delivered_at=None, refunded_at=None, sandbox=True,
)  # fmt: skip


def _texts(embed: discord.Embed) -> list[str]:
    found = [embed.title or "", embed.author.name or ""]
    found += [text for field in embed.fields for text in (field.name or "", field.value or "")]
    return [text for text in found if text]


def _labels(view: discord.ui.View) -> list[str]:
    return [item.label or "" for item in view.children if isinstance(item, discord.ui.Button)]


def test_a_french_server_gets_french_cards_posts_and_buttons() -> None:
    """The queued card, the delivered post (as a link) and the buttons, in French."""
    fr = for_locale("fr")
    card = status_card(JOB, info=CardInfo(position=2, total=5), tr=fr)
    assert card.title == "🕒 En file d’attente : position 2 sur 5"
    fields = {f.name: f.value for f in card.fields}
    assert fields["Type"] == "Image vers vidéo"
    assert fields["Paramètres"] == "16:9 · 5 s · std · avec son"
    assert fields["Coût"] == "2 crédits"
    assert card.footer.text == "HappyHorse job #42", "the marker stays as it is"
    assert card.author.name == "🧪 Clip de test du sandbox : aucune clé d’API n’est configurée"

    done = dataclasses.replace(JOB, state=JobState.DELIVERED, result_url="https://v.test/1.mp4")
    post = delivery_embed(done, link_only=True, tr=fr)
    assert post.title == "🎬 Ta vidéo est prête"
    assert {f.name for f in post.fields} == {"Paramètres", "Coût", "Téléchargement"}
    assert _labels(result_view(42, tr=fr)) == ["Régénérer", "Continuer", "Supprimer"]
    assert _labels(cancel_view(42, fr)) == ["Annuler"]
    assert _labels(cancel_view(42)) == ["Cancel"], "English by default"


def test_the_pseudo_locale_leaves_no_english_on_cards_and_buttons() -> None:
    """Every state's card and the /jobs line: nothing outside ⟦ ⟧ but data."""
    pseudo = for_locale(PSEUDO_LOCALE)
    leaks = []
    for state in JobState:
        job = dataclasses.replace(JOB, state=state, prompt="", cancelled_by=9)
        texts = _texts(status_card(job, info=CardInfo(position=1, total=1), tr=pseudo))
        texts += [job_line(job, 1, (1, 1), tr=pseudo)]
        texts += _labels(result_view(1, tr=pseudo)) + _labels(cancel_view(1, pseudo))
        for text in texts:
            rest = re.sub(r"⟦[^⟧]*⟧|<[^<>]*>|\b(std|16:9)\b|\*\*#\d+\*\*", "", text)
            if any(char.isascii() and char.isalpha() for char in rest):
                leaks.append(f"{state.value}: {text!r}")
    assert leaks == []
