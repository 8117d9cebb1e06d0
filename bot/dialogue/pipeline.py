"""One customer turn, from the stored message to the stored reply.

    message ─► store (user turn, first) ─► small talk? ─► classifier ─► policy.decide
       ├─ search: retriever ─► policy.ground (answer, or clarify when the FAQ has nothing)
       ├─ answer: responder (grounded generator) or the best FAQ answer verbatim
       ├─ action: rasa-sdk action server (after a form collected its slots; one with a
    │          side effect after the customer's "Yes", its slots looked up first)
       ├─ clarify / ask for a slot / small talk / out of scope: the policy's text
       └─ handoff: a queue entry for a person; the bot is silent until handed back
    ─► store (bot turn with intent, passages, model versions, latencies, dialogue state)

The policy (`deskbot.bot.dialogue.policy`) decides every route; this module carries it
out. Every step has one deadline and a fallback; the customer's turn is never lost:

- classify: `DialogueRules.classify_timeout_s` from the moment the classifier starts
  (it runs while the message is stored). Failing, the policy gets no intent and the FAQ
  may still answer.
- retrieve: `DialogueRules.retrieve_timeout_s`. Failing, there are no passages and the
  policy clarifies (then hands off).
- generate: `DialogueRules.generate_timeout_s` for the whole reply, passed to the
  responder as its deadline (it stops the generator and keeps what passed the guard);
  a generator that hangs without a word is given up `GENERATE_GRACE_S` later. Failing,
  the FAQ answer verbatim (or, streaming, what was already shown).
- action: the action client's own `actions.timeout_s` (one HTTP call, no retry).
  Failing, a person takes over; an action that refuses the call gets an apology.

Example:
    >>> reply = pipeline.handle(conversation_id, "my card hasn't arrived yet")  # doctest: +SKIP
    >>> reply.kind, reply.passages[0].id                                         # doctest: +SKIP
    ('faq', 'card-arrival')
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Literal, TypeVar

from deskbot.bot.actions.client import ActionClient
from deskbot.bot.core.errors import ComponentUnavailable, DeskbotError
from deskbot.bot.core.metrics import BotMetrics, ms_since
from deskbot.bot.core.types import IntentPrediction, Passage, Reply, Turn
from deskbot.bot.dialogue.acting import ActionCall, ActionStep
from deskbot.bot.dialogue.handoffs import ConversationHandoffs, UnknownTurn
from deskbot.bot.dialogue.policy import (
    Decision,
    DialoguePolicy,
    DialogueRules,
    DialogueState,
    Message,
)
from deskbot.bot.dialogue.recording import TurnRecords, age_s, replay
from deskbot.bot.dialogue.turn import (
    Classifying,
    Heard,
    Outcome,
    Responder,
    ResponderOutcome,
    TurnRetriever,
    TurnSoFar,
)
from deskbot.bot.nlu.classifier import IntentClassifier, QueuedIntentClassifier
from deskbot.bot.nlu.context import plan_reading, read_alone, read_in_context, thread_text
from deskbot.bot.nlu.smalltalk import SmallTalk, detect_smalltalk
from deskbot.bot.store import Conversation, Handoff, SqlConversationStore
from deskbot.bot.store.audit import AuditEntry

logger = logging.getLogger(__name__)

__all__ = ["TurnPipeline", "UnknownTurn"]

# The responder stops the generator at the deadline itself; this much later the turn
# stops waiting for one that hangs without yielding.
GENERATE_GRACE_S = 1.0
# Responders run on their own bounded pool: generators that hang hold at most this many
# threads, and the turns after them wait out their deadline and fall back.
RESPOND_THREADS = 32
# What a retried message allows an action call on top of the other deadlines (the action
# client's own timeout is the config's; this bounds the wait of a retry for its reply).
ACTION_BUDGET_S = 15.0

T = TypeVar("T")
Step = Literal["classify", "retrieve", "generate", "action"]


class TurnPipeline:
    """Classify, decide, answer (or act, clarify, hand off), and log one turn.

    The customer's message is stored before any model runs, so no failure later in
    the turn can lose it.

    Args:
        store: where both turns and the dialogue state are written.
        classifier: names the intent.
        retriever: finds the FAQ answers.
        rules: thresholds, time limits and the policy's rules (from the config; the
            policy reads the same object).
        responder: composes FAQ replies (the grounded generator); None answers with
            the best passage verbatim.
        actions: the rasa-sdk action client; None hands off turns that need an action.
        metrics: Prometheus counters; None records none.
        prefetch: starts embedding a query while the classifier runs
            (`BatchingEmbedder.prefetch`); None when the embedder cannot.
    """

    def __init__(
        self,
        store: SqlConversationStore,
        classifier: IntentClassifier,
        retriever: TurnRetriever,
        rules: DialogueRules | None = None,
        *,
        responder: Responder | None = None,
        actions: ActionClient | None = None,
        metrics: BotMetrics | None = None,
        prefetch: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.classifier = classifier
        self.retriever = retriever
        self.rules = rules or DialogueRules()
        self.responder = responder
        self.actions = actions
        self.metrics = metrics
        self.prefetch = prefetch
        self.policy = DialoguePolicy(self.rules)
        self.handoffs = ConversationHandoffs(store, self.policy, metrics)
        self._actions = ActionStep(
            actions, self.policy, lambda conversation_id: self._fallback("action", conversation_id)
        )
        # `knowledge.query_encoder: intents`: the classifier's embedding of the message is
        # its FAQ query vector too (one encoder pass per turn instead of two).
        self._shared_encoder = retriever.shared_encoder is not None
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="deskbot-step")
        self._respond_pool = ThreadPoolExecutor(
            max_workers=RESPOND_THREADS, thread_name_prefix="deskbot-responder"
        )
        r = self.rules
        budget_s = r.classify_timeout_s + r.retrieve_timeout_s + r.generate_timeout_s
        self.records = TurnRecords(store, metrics, budget_s + GENERATE_GRACE_S + ACTION_BUDGET_S)

    # -- public entry points -------------------------------------------------------------

    def handle(
        self,
        conversation_id: str,
        text: str,
        *,
        conversation: Conversation | None = None,
        message_id: str | None = None,
    ) -> Reply:
        """Answer one customer message (the whole reply at once).

        `conversation`: the conversation as the caller has just read it (the API's token
        check), to save reading it again. `message_id`: the client's id of the message;
        a retry with the same id gets the first copy's reply, never a second turn
        (`deskbot.bot.dialogue.retries`).
        """
        reply: Reply | None = None
        turn = self._turn(
            conversation_id, text, stream=False, conversation=conversation, message_id=message_id
        )
        for item in turn:
            if isinstance(item, Reply):
                reply = item
        assert reply is not None
        return reply

    def handle_stream(
        self,
        conversation_id: str,
        text: str,
        *,
        conversation: Conversation | None = None,
        message_id: str | None = None,
    ) -> Iterator[str | Reply]:
        """Answer one customer message as text pieces, then the final `Reply`.

        The pieces join to the reply's text; the `Reply` comes last and is what was stored.
        A retry (`message_id` seen before) gets the first copy's reply as one piece.
        """
        yield from self._turn(
            conversation_id, text, stream=True, conversation=conversation, message_id=message_id
        )

    def feedback(self, conversation_id: str, turn_id: int, value: int) -> Reply | None:
        """Record a thumbs up (+1) or down (-1) on a bot reply (`ConversationHandoffs.feedback`)."""
        return self.handoffs.feedback(conversation_id, turn_id, value)

    def request_handoff(self, conversation_id: str) -> tuple[Handoff, Reply]:
        """The customer asked for a person (a button, not a message): queue the conversation."""
        return self.handoffs.request(conversation_id)

    def hand_back(self, handoff_id: int, *, audit: AuditEntry | None = None) -> None:
        """An agent gives the conversation back to the bot; its fallback counters restart."""
        self.handoffs.hand_back(handoff_id, audit=audit)

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
        conversation: Conversation | None,
        message_id: str | None,
    ) -> Iterator[str | Reply]:
        turn = TurnSoFar(conversation_id, text, stream, message_id=message_id)
        conv = (
            conversation
            if conversation is not None
            else self.store.get_conversation(conversation_id)
        )
        if conv is None or conv.id != conversation_id:
            raise DeskbotError(f"no conversation {conversation_id!r}; create one first")
        if message_id is not None:
            stored = self.records.earlier(conversation_id, message_id, text)
            if stored is not None:
                replayed = self.records.reply_of(conv, stored)
                if replayed is None:
                    turn.stored = stored  # stored before a failure, never answered
                else:
                    yield from replay(replayed)
                    return
        if conv.status == "handoff":
            yield self.records.waiting_for_agent(turn)
            return
        try:
            yield from self._run(turn, conv)
        finally:
            if turn.running is not None and message_id is not None:
                self.records.finished(conversation_id, message_id, turn.running)

    def _run(self, turn: TurnSoFar, conv: Conversation) -> Iterator[str | Reply]:
        """The turn from the dialogue state on: store, understand, decide, carry out."""
        conversation_id, text = turn.conversation_id, turn.text
        before = DialogueState.from_json(self.store.dialogue_state(conversation_id))
        if age_s(conv.updated_at) > self.rules.session_expiry_s:
            before = DialogueState()  # the session expired: slots and forms are forgotten
        smalltalk = detect_smalltalk(text)
        classifying = self._start_classifying(turn, before, smalltalk)
        try:
            user_turn = self.records.message(turn)
        except BaseException:
            if classifying.future is not None:
                classifying.future.cancel()
            raise
        if user_turn is None:  # a copy sent at the same moment was stored first
            assert turn.stored is not None
            replayed = self.records.reply_of(conv, turn.stored)
            if replayed is not None:
                yield from replay(replayed)
                return
            user_turn = turn.stored  # its turn died: this one answers it
        heard = self._heard(turn, before, smalltalk, classifying)
        decision = self.policy.decide(before, heard.message)
        passages: list[Passage] = []
        if decision.search:
            passages = self._retrieve(turn, heard, decision.query_intent)
            grounded = self.policy.ground(before, decision, passages[0] if passages else None)
            if decision.route != "answer" and grounded.route != "answer":
                passages = []  # an unsure message the FAQ could not answer either
            decision = grounded
        if decision.route == "prepare":
            decision = self._actions.prepare(self._call(turn, decision, heard.message))
        outcome = yield from self._carry_out(turn, decision, heard.message, passages)
        if outcome.kind == "handoff" and outcome.handoff_reason:
            self.handoffs.open(conversation_id, outcome.handoff_reason, decision.intent)
        if not outcome.streamed and outcome.text:
            yield outcome.text  # nothing was streamed: the whole text is one piece
        versions = {"intents": self.classifier.version}
        if self.retriever.version:
            versions["faq_index"] = str(self.retriever.version)
        yield self.records.reply(turn, user_turn, heard.message, outcome, versions)

    def _start_classifying(
        self, turn: TurnSoFar, state: DialogueState, smalltalk: SmallTalk | None
    ) -> Classifying:
        """Start the models before the message is stored (they run while it is, releasing
        the GIL): the message alone, and after its thread when it has one, in one batch."""
        if smalltalk is not None:
            return Classifying()
        clicked = self.policy.button_intent(state, turn.text, set(self.classifier.labels))
        if clicked is not None:
            return Classifying(clicked=IntentPrediction(clicked, 1.0, ((clicked, 1.0),)))
        # In a form or a yes/no question, a message answers the bot: it is read alone.
        threaded = state.form is None and state.pending is None
        said, context, corrected = plan_reading(
            turn.text, state.thread if threaded else (), self.rules.context
        )
        texts = [said] if context is None else [said, thread_text(context, said)]
        if isinstance(self.classifier, QueuedIntentClassifier):  # it batches: no thread waits
            future = self.classifier.submit(texts)
        else:
            future = self._pool.submit(self.classifier.predict_encoded, texts)
        if state.form is None and not self._shared_encoder and self.prefetch is not None:
            self.prefetch(said)  # embedded while the classifier runs: retrieval only searches
        return Classifying(future, time.perf_counter(), said, context, corrected)

    def _heard(
        self,
        turn: TurnSoFar,
        state: DialogueState,
        talk: SmallTalk | None,
        classifying: Classifying,
    ) -> Heard:
        """The classifier's verdict within its deadline, and the message read in its thread."""
        if classifying.future is None:
            clicked = classifying.clicked
            reading = read_alone(turn.text, clicked) if clicked is not None else None
            message = Message(turn.text, talk, clicked, clicked is not None, reading=reading)
            return Heard(message, query=turn.text)
        deadline = classifying.started + self.rules.classify_timeout_s
        try:
            encoded = self._result(classifying.future, deadline - time.perf_counter())
        except Exception:
            self._fallback("classify", turn.conversation_id)
            return Heard(Message(turn.text, talk, classified=False), query=turn.text)
        finally:
            turn.latency["classify"] = ms_since(classifying.started)
        said, context = classifying.said, classifying.context
        reading = read_in_context(
            said,
            encoded[0].prediction,
            encoded[1].prediction if context is not None else None,
            context=context,
            topic=state.topic,
            rules=self.rules.context,
            correction=classifying.correction,
        )
        message = Message(turn.text, talk, reading.prediction, reading=reading)
        if reading.used and context is not None:  # the FAQ is searched for the thread too
            return Heard(message, encoded[1], thread_text(context, said))
        return Heard(message, encoded[0], said)

    def _call(self, turn: TurnSoFar, decision: Decision, message: Message) -> ActionCall:
        history = self._history(turn.conversation_id)
        prediction = message.prediction
        if decision.intent and (prediction is None or prediction.intent != decision.intent):
            # The message answered the bot ("yes" to an offer, a form's slot value): the
            # action runs for the intent the customer confirmed, not for this message's.
            prediction = IntentPrediction(decision.intent, 1.0, ((decision.intent, 1.0),))
        return ActionCall(turn, prediction, decision, history, self.classifier.labels)

    def _carry_out(
        self, turn: TurnSoFar, decision: Decision, message: Message, passages: list[Passage]
    ) -> Generator[str, None, Outcome]:
        """Run the decided route; yields streamed pieces, returns the outcome."""
        if decision.route == "answer":  # with the decision's buttons (an action offered)
            answered = yield from self._answer(turn, decision.state, passages)
            return replace(answered, buttons=decision.buttons)
        if decision.route == "action":
            return self._actions.run(self._call(turn, decision, message))
        return Outcome(
            text=decision.text,
            kind=decision.kind,
            state=decision.state,
            passages=tuple(passages),
            buttons=decision.buttons,
            handoff_reason=decision.handoff_reason,
        )

    # -- routes --------------------------------------------------------------------------

    def _answer(
        self, turn: TurnSoFar, state: DialogueState, passages: list[Passage]
    ) -> Generator[str, None, Outcome]:
        """Answer from the passages the policy found good enough (best first)."""
        best = passages[0]
        verbatim = Outcome(
            text=best.text, kind="faq", state=state, passages=(best,), citations=(best.id,)
        )
        if self.responder is None:
            return verbatim
        t = time.perf_counter()
        history = self._history(turn.conversation_id)
        shown: list[str] = []
        result: ResponderOutcome | None = None
        try:
            for item in self._responder_stream(self.responder, history, passages):
                if isinstance(item, str):
                    shown.append(item)
                    if turn.stream:
                        yield item
                else:
                    result = item
        except Exception:
            self._fallback("generate", turn.conversation_id)
        turn.latency["respond"] = ms_since(t)
        if result is not None:
            return Outcome(
                text=result.text,
                kind=result.kind,
                state=state,
                passages=tuple(passages),
                citations=tuple(result.citations),
                generator=result.generator,
                streamed=turn.stream,
            )
        if not (turn.stream and shown):
            return verbatim  # the generator failed before the customer saw a word
        # What was shown stays.
        return Outcome(
            text="".join(shown),
            kind="generated",
            state=state,
            passages=tuple(passages),
            citations=(best.id,),
            streamed=True,
        )

    def _retrieve(self, turn: TurnSoFar, heard: Heard, intent: str | None) -> list[Passage]:
        t = time.perf_counter()
        encoded, query = heard.encoded, heard.query or turn.text

        def retrieve() -> list[Passage]:
            if encoded is not None and self._shared_encoder:
                return self.retriever.retrieve(
                    query,
                    top_k=self.rules.top_k,
                    intent=intent,
                    query_vector=encoded.vector,
                    vector_model=encoded.model,
                )
            return self.retriever.retrieve(query, top_k=self.rules.top_k, intent=intent)

        try:
            return self._result(self._pool.submit(retrieve), self.rules.retrieve_timeout_s)
        except Exception:
            self._fallback("retrieve", turn.conversation_id)
            return []
        finally:
            turn.latency["retrieve"] = ms_since(t)

    def _responder_stream(
        self, responder: Responder, history: Sequence[Turn], passages: Sequence[Passage]
    ) -> Iterator[str | ResponderOutcome]:
        """The responder's stream, read on a worker thread so that a stalled generator
        times out instead of holding the turn."""
        items: queue.Queue[tuple[str, str | ResponderOutcome | BaseException | None]]
        items = queue.Queue()
        deadline = time.perf_counter() + self.rules.generate_timeout_s

        def run() -> None:
            try:
                for item in responder.stream(history, passages, deadline=deadline):
                    items.put(("item", item))
                items.put(("done", None))
            except BaseException as exc:  # the reading side raises it
                items.put(("error", exc))

        self._respond_pool.submit(run)
        while True:
            try:
                tag, value = items.get(
                    timeout=max(0.0, deadline + GENERATE_GRACE_S - time.perf_counter())
                )
            except queue.Empty:
                raise ComponentUnavailable("the responder timed out") from None
            if tag == "done":
                return
            if isinstance(value, BaseException):
                raise ComponentUnavailable(f"the responder failed: {value}") from value
            if value is not None:
                yield value

    # -- helpers -------------------------------------------------------------------------

    def _history(self, conversation_id: str) -> list[Turn]:
        return [
            Turn(role=t.role, text=t.text)
            for t in self.store.history(conversation_id, limit=self.rules.history_turns)
            if t.text
        ]

    @staticmethod
    def _result(future: Future[T], timeout_s: float) -> T:
        """The step's result, or ComponentUnavailable once `timeout_s` has passed."""
        try:
            return future.result(timeout=max(0.0, timeout_s))
        except FutureTimeout:
            future.cancel()
            raise ComponentUnavailable(f"step timed out after {timeout_s:.3g}s") from None

    def _fallback(self, step: Step, conversation_id: str) -> None:
        logger.warning(
            "step %s failed in conversation %s; falling back", step, conversation_id, exc_info=True
        )
        if self.metrics is not None:
            self.metrics.fallback(step)
