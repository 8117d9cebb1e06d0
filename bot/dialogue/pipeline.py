"""One customer turn, from the stored message to the stored reply.

    message ─► store (user turn, first) ─► small talk? ─► classifier ─► policy
       ├─ answer: retriever ─► responder (grounded generator) or the best FAQ answer
       ├─ action: rasa-sdk action server (after a form collected its slots)
       ├─ clarify / ask for a slot / small talk: the policy's text
       └─ handoff: a queue entry for a person; the bot is silent until handed back
    ─► store (bot turn with intent, passages, model versions, latencies, dialogue state)

Every step has a timeout and a fallback: a failing classifier still lets the FAQ
answer, a failing retriever clarifies, a failing generator gives the FAQ answer
verbatim, a failing action server hands off. The customer's turn is never lost.

Example:
    >>> reply = pipeline.handle(conversation_id, "my card hasn't arrived yet")  # doctest: +SKIP
    >>> reply.kind, reply.passages[0].id                                         # doctest: +SKIP
    ('faq', 'card-arrival')
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from deskbot.bot.actions.client import (
    ActionClient,
    ActionNotFound,
    ActionRejected,
    domain_for,
    tracker_for,
)
from deskbot.bot.core.errors import ComponentUnavailable, DeskbotError
from deskbot.bot.core.metrics import BotMetrics
from deskbot.bot.core.slots import SLOT_PATTERNS
from deskbot.bot.core.types import IntentPrediction, Passage, Reply, Turn
from deskbot.bot.dialogue.policy import (
    Decision,
    DialoguePolicy,
    DialogueState,
    HandoffReason,
    PolicySettings,
)
from deskbot.bot.nlu.classifier import EncodedPrediction, IntentClassifier
from deskbot.bot.nlu.smalltalk import detect_smalltalk
from deskbot.bot.store import Conversation, Handoff, SqlConversationStore
from deskbot.knowledge.retrieval.retriever import Retriever

logger = logging.getLogger(__name__)

__all__ = [
    "CLARIFY_TEXT",
    "PipelineSettings",
    "Responder",
    "ResponderOutcome",
    "TurnPipeline",
    "UnknownTurn",
]

CLARIFY_TEXT = (
    "I'm not sure I understood. Could you tell me a bit more about what you need help with?"
)
HUMAN_SILENT_TEXT = ""
ACTION_REJECTED_TEXT = (
    "Sorry, I couldn't do that just now. Could you tell me again what you need, or ask for a "
    "colleague?"
)

T = TypeVar("T")
# At most this many replies are composed at once (the API serves 40 requests at a time).
RESPOND_THREADS = 32


class UnknownTurn(DeskbotError):
    """No such bot turn in this conversation (feedback on someone else's turn, say)."""


class ResponderOutcome(Protocol):
    """What a responder returns (`deskbot.bot.generation.responder.ResponderResult` has this shape)."""

    @property
    def text(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def citations(self) -> tuple[str, ...]: ...
    @property
    def generator(self) -> str | None: ...
    @property
    def latency_ms(self) -> dict[str, float]: ...


class Responder(Protocol):
    """Composes the reply from the passages (the grounded generator plugs in here)."""

    def respond(
        self,
        history: Sequence[Turn],
        passages: Sequence[Passage],
        *,
        on_token: Callable[[str], None] | None = None,
    ) -> ResponderOutcome: ...

    def stream(
        self, history: Sequence[Turn], passages: Sequence[Passage]
    ) -> Iterator[str | ResponderOutcome]: ...


@dataclass(frozen=True)
class PipelineSettings:
    """Thresholds and time limits of the turn (from the config)."""

    top_k: int = 3
    min_score: float = 0.35
    clarify_below: float = 0.5
    # A retrieval score this high answers from the FAQ even when the classifier is unsure.
    answer_score: float = 0.65
    classify_timeout_s: float = 2.0
    retrieve_timeout_s: float = 2.0
    generate_timeout_s: float = 30.0
    session_expiry_s: float = 3600.0
    # Turns of history the responder and the action server see.
    history_turns: int = 8
    intent_actions: Mapping[str, str] = field(default_factory=dict)
    required_slots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    handoff_action: str = "action_handoff"
    max_out_of_scope: int = 2
    max_clarifications: int = 2
    max_negative_feedback: int = 2
    form_max_attempts: int = 2
    bot_name: str = "our"

    def policy_settings(self) -> PolicySettings:
        return PolicySettings(
            intent_actions=self.intent_actions,
            required_slots=self.required_slots,
            clarify_below=self.clarify_below,
            max_out_of_scope=self.max_out_of_scope,
            max_clarifications=self.max_clarifications,
            max_negative_feedback=self.max_negative_feedback,
            form_max_attempts=self.form_max_attempts,
            bot_name=self.bot_name,
        )


@dataclass
class _Outcome:
    """The bot's side of one turn, before it is stored."""

    text: str
    kind: str
    state: DialogueState
    passages: tuple[Passage, ...] = ()
    citations: tuple[str, ...] = ()
    buttons: tuple[str, ...] = ()
    handoff_reason: str | None = None
    action: str | None = None
    generator: str | None = None
    # Its text already went out as streamed pieces.
    streamed: bool = False


class TurnPipeline:
    """Classify, decide, answer (or act, clarify, hand off), and log one turn.

    The customer's message is stored before any model runs, so no failure later in
    the turn can lose it.

    Args:
        store: where both turns and the dialogue state are written.
        classifier: names the intent.
        retriever: finds the FAQ answers.
        settings: thresholds, time limits and the policy's rules (from the config).
        responder: composes FAQ replies (the grounded generator); None answers with
            the best passage verbatim.
        actions: the rasa-sdk action client; None hands off turns that need an action.
        metrics: Prometheus counters; None records none.
    """

    def __init__(
        self,
        store: SqlConversationStore,
        classifier: IntentClassifier,
        retriever: Retriever,
        settings: PipelineSettings | None = None,
        *,
        responder: Responder | None = None,
        actions: ActionClient | None = None,
        metrics: BotMetrics | None = None,
    ) -> None:
        self.store = store
        self.classifier = classifier
        self.retriever = retriever
        self.settings = settings or PipelineSettings()
        self.responder = responder
        self.actions = actions
        self.metrics = metrics
        self.policy = DialoguePolicy(self.settings.policy_settings())
        # `knowledge.query_encoder: intents`: the classifier's embedding of the message is
        # its FAQ query vector too (one encoder pass per turn instead of two).
        self._shared_encoder = getattr(retriever, "shared_encoder", None) is not None
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="deskbot-step")
        # The responder waits on a generator that may hang: its own threads, so that
        # stalled generator calls cannot leave classification and retrieval waiting for a
        # thread (and failing over to clarifications) for as long as the generator hangs.
        self._respond_pool = ThreadPoolExecutor(
            max_workers=RESPOND_THREADS, thread_name_prefix="deskbot-respond"
        )

    # -- public entry points -------------------------------------------------------------

    def handle(
        self, conversation_id: str, text: str, *, conversation: Conversation | None = None
    ) -> Reply:
        """Answer one customer message (the whole reply at once).

        `conversation`: the conversation as the caller has just read it (the API's token
        check), to save reading it again.
        """
        reply: Reply | None = None
        for item in self._turn(conversation_id, text, stream=False, conversation=conversation):
            if isinstance(item, Reply):
                reply = item
        assert reply is not None
        return reply

    def handle_stream(
        self, conversation_id: str, text: str, *, conversation: Conversation | None = None
    ) -> Iterator[str | Reply]:
        """Answer one customer message as text pieces, then the final `Reply`.

        The pieces join to the reply's text; the `Reply` comes last and is what was stored.
        """
        yield from self._turn(conversation_id, text, stream=True, conversation=conversation)

    def feedback(self, conversation_id: str, turn_id: int, value: int) -> Reply | None:
        """Record the customer's thumbs up (+1) or down (-1) on one of the bot's replies.

        Repeated negative feedback hands the conversation to a person: the handoff
        message is returned (and stored) then; otherwise None.

        Raises:
            UnknownTurn: `turn_id` is not a bot turn of this conversation.
            ValueError: `value` is not +1 or -1.
        """
        if value not in (-1, 1):
            raise ValueError("feedback is +1 or -1")
        turn = self.store.conversation_turn(conversation_id, turn_id)
        if turn is None or turn.role != "bot" or not turn.text:
            raise UnknownTurn(f"no bot reply {turn_id} in this conversation")
        self.store.set_feedback(turn_id, value)
        if self.metrics is not None:
            self.metrics.feedback.labels(value="up" if value > 0 else "down").inc()
        state = DialogueState.from_json(self.store.dialogue_state(conversation_id))
        if value > 0:
            self.store.save_dialogue_state(
                conversation_id, replace(state, negative_streak=0).to_json()
            )
            return None
        conv = self.store.get_conversation(conversation_id)
        if conv is not None and conv.status == "handoff":
            return None
        decision = self.policy.on_negative(state)
        if decision.route != "handoff":
            self.store.save_dialogue_state(conversation_id, decision.state.to_json())
            return None
        return self._store_handoff(
            conversation_id, decision.handoff_reason or "negative_feedback", decision
        )

    def request_handoff(self, conversation_id: str) -> tuple[Handoff, Reply]:
        """The customer asked for a person (a button, not a message): queue the conversation."""
        state = DialogueState.from_json(self.store.dialogue_state(conversation_id))
        decision = self.policy.handoff(state, "customer_request")
        reply = self._store_handoff(conversation_id, "customer_request", decision)
        handoff = self.store.active_handoff(conversation_id)
        assert handoff is not None
        return handoff, reply

    def hand_back(self, handoff_id: int) -> None:
        """An agent gives the conversation back to the bot; its fallback counters restart."""
        handoff = self.store.get_handoff(handoff_id)
        if handoff is None:
            raise DeskbotError(f"no handoff {handoff_id}")
        self.store.resolve_handoff(handoff_id, back_to_bot=True)
        state = DialogueState.from_json(self.store.dialogue_state(handoff.conversation_id))
        self.store.save_dialogue_state(
            handoff.conversation_id,
            replace(state.settled(), form=None, form_intent=None, form_attempts=0).to_json(),
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._respond_pool.shutdown(wait=False, cancel_futures=True)

    # -- the turn ------------------------------------------------------------------------

    def _turn(
        self,
        conversation_id: str,
        text: str,
        *,
        stream: bool,
        conversation: Conversation | None = None,
    ) -> Iterator[str | Reply]:
        started = time.perf_counter()
        latency: dict[str, float] = {}
        conv = (
            conversation
            if conversation is not None
            else self.store.get_conversation(conversation_id)
        )
        if conv is None or conv.id != conversation_id:
            raise DeskbotError(f"no conversation {conversation_id!r}; create one first")
        last_active = conv.updated_at
        if conv.status == "handoff":
            # A person owns the conversation: the message waits for them, the bot stays silent.
            self.store.append_turn(conversation_id, "user", text)
            latency["store_user"] = latency["total"] = _ms(started)
            if self.metrics is not None:
                self.metrics.turn("handoff", latency)
            yield Reply(text=HUMAN_SILENT_TEXT, kind="handoff", latency_ms=latency)
            return

        state = DialogueState.from_json(self.store.dialogue_state(conversation_id))
        if _age_s(last_active) > self.settings.session_expiry_s:
            state = DialogueState()  # the session expired: slots and forms are forgotten

        smalltalk = detect_smalltalk(text)
        prediction: IntentPrediction | None = None
        encoded: EncodedPrediction | None = None
        classify_failed = False
        picked = False
        classifying: Future[Sequence[IntentPrediction | EncodedPrediction]] | None = None
        if smalltalk is None:
            clicked = self.policy.button_intent(state, text, set(self.classifier.labels))
            if clicked is not None:
                picked = True
                prediction = IntentPrediction(clicked, 1.0, ((clicked, 1.0),))
            else:
                # The models start before the message is stored and run while it is
                # (on the other core: they release the GIL); nothing is answered before
                # the message is stored.
                classify_started = time.perf_counter()
                submit = getattr(self.classifier, "submit", None)
                if submit is not None:
                    # A micro-batching classifier queues it itself: no thread waits for it.
                    classifying = submit([text])
                else:
                    predict = self.classifier.predict
                    if self._shared_encoder:
                        predict = getattr(self.classifier, "predict_encoded", predict)
                    classifying = self._pool.submit(lambda: predict([text]))
            if state.form is None and not (self._shared_encoder and classifying is not None):
                # The query's embedding is computed while the classifier runs, where the
                # embedder can (a micro-batching one): retrieval then only searches.
                prefetch = getattr(getattr(self.retriever, "embedder", None), "prefetch", None)
                if prefetch is not None:
                    prefetch(text)

        t = time.perf_counter()
        try:
            user_turn = self.store.append_turn(conversation_id, "user", text)
        except BaseException:
            if classifying is not None:
                classifying.cancel()
            raise
        latency["store_user"] = _ms(t)
        if classifying is not None:
            try:
                remaining = self.settings.classify_timeout_s - (
                    time.perf_counter() - classify_started
                )
                result = self._result(classifying, remaining)[0]
                if isinstance(result, EncodedPrediction):
                    encoded, prediction = result, result.prediction
                else:
                    prediction = result
            except Exception:
                classify_failed = True
                self._fallback("classify", conversation_id)
            latency["classify"] = _ms(classify_started)

        if classify_failed and state.form is None:
            # Without an intent the FAQ may still know the answer.
            decision = Decision(route="answer", state=state)
        else:
            decision = self.policy.decide(
                state, text=text, smalltalk=smalltalk, prediction=prediction, confirmed=picked
            )

        outcome: _Outcome | None = None
        prefetched: list[Passage] | None = None
        if decision.route in ("clarify", "out_of_scope") and prediction is not None:
            # The classifier is unsure, but the FAQ may know this question well: a close
            # match (tagged with a candidate intent, when there are candidates) answers.
            offered = decision.state.offered
            prefetched = self._retrieve(
                conversation_id, text, offered[0] if offered else None, latency, encoded
            )
            best = prefetched[0] if prefetched else None
            if (
                best is not None
                and best.score >= self.settings.answer_score
                and (not offered or best.intent in offered)
            ):
                decision = Decision(
                    route="answer",
                    state=replace(state, slots=decision.state.slots).settled(),
                    intent=best.intent,
                )
        if decision.route == "answer":
            answer = self._answer(
                conversation_id,
                text,
                prediction,
                decision,
                latency,
                stream,
                prefetched,
                state,
                encoded,
            )
            for item in answer:
                if isinstance(item, _Outcome):
                    outcome = item
                else:
                    yield item
        elif decision.route == "action":
            outcome = self._act(conversation_id, text, prediction, decision, latency)
        else:
            outcome = self._from_decision(decision)
        assert outcome is not None
        if outcome.kind == "handoff" and outcome.handoff_reason:
            self._open_handoff(conversation_id, outcome.handoff_reason, decision.intent)
        if not outcome.streamed and outcome.text:
            yield outcome.text  # nothing was streamed: the whole text is one piece

        latency["total"] = _ms(started)
        versions = {"intents": self.classifier.version}
        index_version = getattr(self.retriever, "version", None)
        if index_version:
            versions["faq_index"] = str(index_version)
        if outcome.generator:
            versions["generator"] = outcome.generator
        user_values: dict[str, Any] = {}
        if prediction is not None:
            user_values = {"intent": prediction.intent, "confidence": prediction.confidence}
        elif smalltalk is not None:
            user_values = {"intent": f"smalltalk:{smalltalk}"}
        bot_turn = self.store.record_bot_turn(
            conversation_id,
            outcome.text,
            user_turn_id=user_turn.id,
            user_values=user_values,
            state=outcome.state.to_json(),
            intent=prediction.intent if prediction else None,
            confidence=prediction.confidence if prediction else None,
            kind=outcome.kind,
            passages=[asdict(p) for p in outcome.passages],
            model_versions=versions,
            latency_ms=latency,
        )
        if self.metrics is not None:
            self.metrics.turn(outcome.kind, latency)
        logger.info(
            "turn %s/%s: intent=%s conf=%.3f kind=%s %.1fms",
            conversation_id,
            bot_turn.seq,
            prediction.intent if prediction else smalltalk,
            prediction.confidence if prediction else 0.0,
            outcome.kind,
            latency["total"],
        )
        yield Reply(
            text=outcome.text,
            kind=outcome.kind,  # type: ignore[arg-type]
            intent=prediction,
            passages=outcome.passages,
            citations=outcome.citations,
            buttons=outcome.buttons,
            latency_ms=latency,
            model_versions=versions,
            turn_id=bot_turn.id,
            handoff_reason=outcome.handoff_reason,
            action=outcome.action,
        )

    # -- routes --------------------------------------------------------------------------

    def _from_decision(self, decision: Decision) -> _Outcome:
        kind = {
            "ask_slot": "form",
            "clarify": "clarify",
            "smalltalk": "smalltalk",
            "out_of_scope": "fallback",
            "handoff": "handoff",
        }[decision.route]
        return _Outcome(
            text=decision.text,
            kind=kind,
            state=decision.state,
            buttons=decision.buttons,
            handoff_reason=decision.handoff_reason,
        )

    def _answer(
        self,
        conversation_id: str,
        text: str,
        prediction: IntentPrediction | None,
        decision: Decision,
        latency: dict[str, float],
        stream: bool,
        passages: list[Passage] | None = None,
        before: DialogueState | None = None,
        encoded: EncodedPrediction | None = None,
    ) -> Iterator[str | _Outcome]:
        if passages is None:
            intent = prediction.intent if prediction is not None and prediction.in_scope else None
            passages = self._retrieve(conversation_id, text, intent, latency, encoded)
        best = passages[0] if passages else None
        state = decision.state
        # The answer route restarted the fallback counters, expecting an answer; without
        # one, the clarifications in a row count on from `before` this message, so that a
        # FAQ that cannot answer (no entry, or an unreadable index) ends in a handoff.
        unanswered = (
            replace(state, clarify_streak=before.clarify_streak) if before is not None else state
        )

        if (
            self.responder is not None
            and best is not None
            and best.score >= self.settings.min_score
        ):
            t = time.perf_counter()
            history = self._history(conversation_id)
            result: ResponderOutcome | None = None
            shown: list[str] = []
            try:
                if stream:
                    for item in self._stream_responder(history, passages):
                        if isinstance(item, str):
                            shown.append(item)
                            yield item
                        else:
                            result = item
                else:
                    result = self._with_timeout(
                        lambda: self.responder.respond(history, passages),  # type: ignore[union-attr]
                        self.settings.generate_timeout_s,
                        pool=self._respond_pool,
                    )
            except Exception:
                self._fallback("generate", conversation_id)
            latency["respond"] = _ms(t)
            if result is not None and result.kind in ("generated", "faq"):
                yield _Outcome(
                    text=result.text,
                    kind=result.kind,
                    state=state,
                    passages=tuple(passages),
                    citations=tuple(result.citations),
                    generator=result.generator,
                    streamed=bool(shown),
                )
                return
            if result is None:
                # The generator failed. What was shown stays; if nothing was, the FAQ
                # answer verbatim.
                yield _Outcome(
                    text="".join(shown) or best.text,
                    kind="generated" if shown else "faq",
                    state=state,
                    passages=tuple(passages) if shown else (best,),
                    citations=(best.id,),
                    streamed=bool(shown),
                )
                return
            if shown:  # the responder clarified, and its question was already shown
                no_answer = self.policy.on_no_answer(unanswered, decision.intent)
                outcome = self._from_decision(no_answer)
                if no_answer.route == "clarify":
                    outcome.text, outcome.streamed = result.text, True
                outcome.passages = tuple(passages)
                yield outcome
                return

        if best is not None and best.score >= self.settings.min_score:
            yield _Outcome(
                text=best.text, kind="faq", state=state, passages=(best,), citations=(best.id,)
            )
            return
        no_answer = self.policy.on_no_answer(unanswered, decision.intent)
        outcome = self._from_decision(no_answer)
        outcome.passages = tuple(passages)
        yield outcome

    def _retrieve(
        self,
        conversation_id: str,
        text: str,
        intent: str | None,
        latency: dict[str, float],
        encoded: EncodedPrediction | None = None,
    ) -> list[Passage]:
        t = time.perf_counter()
        top_k = self.settings.top_k
        retrieve: Callable[[], list[Passage]]
        if encoded is not None and self._shared_encoder:
            retrieve_shared = self.retriever.retrieve  # FaissRetriever's, with vectors

            def retrieve() -> list[Passage]:
                return retrieve_shared(  # type: ignore[call-arg]
                    text,
                    top_k=top_k,
                    intent=intent,
                    query_vector=encoded.vector,
                    vector_model=encoded.model,
                )
        else:

            def retrieve() -> list[Passage]:
                return self.retriever.retrieve(text, top_k=top_k, intent=intent)

        try:
            return self._with_timeout(retrieve, self.settings.retrieve_timeout_s)
        except Exception:
            self._fallback("retrieve", conversation_id)
            return []
        finally:
            latency["retrieve"] = _ms(t)

    def _stream_responder(
        self, history: Sequence[Turn], passages: Sequence[Passage]
    ) -> Iterator[str | ResponderOutcome]:
        """The responder's stream, read on a worker thread so that a stalled generator
        times out instead of holding the turn."""
        assert self.responder is not None
        items: queue.Queue[tuple[str, Any]] = queue.Queue()
        responder = self.responder

        def run() -> None:
            try:
                for item in responder.stream(history, passages):
                    items.put(("item", item))
                items.put(("done", None))
            except BaseException as exc:  # the reading side raises it
                items.put(("error", exc))

        threading.Thread(target=run, name="deskbot-responder", daemon=True).start()
        deadline = time.perf_counter() + self.settings.generate_timeout_s
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise ComponentUnavailable("the responder timed out")
            try:
                tag, value = items.get(timeout=remaining)
            except queue.Empty:
                raise ComponentUnavailable("the responder timed out") from None
            if tag == "done":
                return
            if tag == "error":
                raise ComponentUnavailable(f"the responder failed: {value}") from value
            yield value

    def _act(
        self,
        conversation_id: str,
        text: str,
        prediction: IntentPrediction | None,
        decision: Decision,
        latency: dict[str, float],
    ) -> _Outcome:
        action = decision.action
        assert action is not None
        state = decision.state
        if self.actions is None:
            self._fallback("action", conversation_id)
            return self._handoff_outcome(state, "action_unavailable", action)
        slot_names = sorted(SLOT_PATTERNS)
        tracker = tracker_for(
            conversation_id,
            slots=state.slots,
            text=text,
            prediction=prediction,
            history=self._history(conversation_id),
            slot_names=slot_names,
        )
        domain = domain_for(
            sorted(self.classifier.labels),
            sorted(set(self.settings.intent_actions.values())),
            slot_names,
        )
        t = time.perf_counter()
        try:
            result = self.actions.run(action, tracker, domain)
        except ActionRejected:
            logger.warning("action %s rejected the call (conversation %s)", action, conversation_id)
            self._fallback("action", conversation_id)
            return _Outcome(text=ACTION_REJECTED_TEXT, kind="fallback", state=state, action=action)
        except (ActionNotFound, ComponentUnavailable) as exc:
            logger.error("action %s failed (conversation %s): %s", action, conversation_id, exc)
            self._fallback("action", conversation_id)
            return self._handoff_outcome(state, "action_unavailable", action)
        finally:
            latency["action"] = _ms(t)
        state = self.policy.after_action(state, list(result.events))
        texts = result.texts
        buttons = tuple(str(b.get("title")) for b in result.buttons if b.get("title"))
        if self.settings.handoff_action in result.followups():
            outcome = self._handoff_outcome(state, "action", action)
            outcome.text = "\n\n".join([*texts, outcome.text])
            return outcome
        return _Outcome(
            text="\n\n".join(texts) or "Done.",
            kind="action",
            state=state,
            buttons=buttons,
            action=action,
        )

    def _handoff_outcome(
        self, state: DialogueState, reason: HandoffReason, action: str | None
    ) -> _Outcome:
        decision = self.policy.handoff(state, reason)
        return _Outcome(
            text=decision.text,
            kind="handoff",
            state=decision.state,
            handoff_reason=reason,
            action=action,
        )

    # -- helpers -------------------------------------------------------------------------

    def _store_handoff(
        self, conversation_id: str, reason: HandoffReason, decision: Decision
    ) -> Reply:
        self._open_handoff(conversation_id, reason, None)
        turn = self.store.record_bot_turn(
            conversation_id, decision.text, state=decision.state.to_json(), kind="handoff"
        )
        return Reply(text=decision.text, kind="handoff", turn_id=turn.id, handoff_reason=reason)

    def _open_handoff(self, conversation_id: str, reason: str, intent: str | None) -> None:
        handoff = self.store.open_handoff(conversation_id, reason, intent=intent)
        if self.metrics is not None:
            self.metrics.handoff(reason)
        logger.info(
            "conversation %s handed off (handoff %s, reason %s)",
            conversation_id,
            handoff.id,
            reason,
        )

    def _history(self, conversation_id: str) -> list[Turn]:
        return [
            Turn(role=t.role, text=t.text)  # type: ignore[arg-type]
            for t in self.store.history(conversation_id, limit=self.settings.history_turns)
            if t.text
        ]

    def _with_timeout(
        self, fn: Callable[[], T], timeout_s: float, *, pool: ThreadPoolExecutor | None = None
    ) -> T:
        return self._result((pool or self._pool).submit(fn), timeout_s)

    @staticmethod
    def _result(future: Future[T], timeout_s: float) -> T:
        """The step's result, or ComponentUnavailable once `timeout_s` has passed."""
        try:
            return future.result(timeout=max(0.0, timeout_s))
        except FutureTimeout:
            future.cancel()
            raise ComponentUnavailable(f"step timed out after {timeout_s:.3g}s") from None

    def _fallback(self, step: str, conversation_id: str) -> None:
        logger.warning(
            "step %s failed in conversation %s; falling back", step, conversation_id, exc_info=True
        )
        if self.metrics is not None:
            self.metrics.fallback(step)


def _age_s(when: datetime | None) -> float:
    if when is None:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds()


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 3)
