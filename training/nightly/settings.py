"""What the nightly job trains on and what its gate demands (`retrain.yaml`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deskbot.bot.core.errors import DataError


@dataclass
class RetrainSettings:
    """How the nightly job trains and what its gate demands. Every field has a default.

    Attributes:
        epochs: fine-tuning epochs over the night's data (new + replayed).
        replay_ratio: replayed known examples per new example; None replays everything
            known (up to `replay_max`). The model's neighbour bank is built from what it
            is trained on, so a partial replay also leaves out of the new version's bank
            what the live model's bank held. Out-of-scope (`oos`) examples are always
            all replayed: they are the out-of-scope detector's bank.
        replay_min_per_intent: known examples of every intent replayed at least.
        replay_max: at most this many replayed examples.
        max_new: at most this many new examples per night (agents' first); the rest
            wait for the next night.
        min_new_examples: fewer new examples than this: no training ("nothing-new").
        min_new_intent_examples: a new intent is learnt once it has this many examples.
        min_confidence: confirmed predictions need this calibrated confidence.
        resolved_statuses: conversation statuses that confirm its turns.
        accuracy_tolerance: the candidate's validation accuracy may be lower by at most
            this, at the lower bound of its gain (see `gate_alpha`).
        f1_margin: the smallest F1 drop of one intent that fails the gate (a floor: the
            allowed drop of an intent with few held-out examples is larger, see
            `f1_margins`).
        f1_alpha: the chance that an honest night fails the per-intent F1 check through
            held-out sampling noise alone (family-wise over all gated intents); None
            gates every intent at `f1_margin` exactly.
        f1_bootstrap: paired bootstrap resamples of the held-out set used to measure
            each intent's F1 noise.
        f1_min_support: intents with fewer held-out examples are not F1-gated.
        oos_tolerance: out-of-scope recall may be lower by at most this.
        audit_margin: reject the night when the live model agrees with the new agent
            labels less often than with the validation window's agent labels of the
            same intents, minus this (and 3 standard errors); None turns the audit off.
            It catches mislabelled or poisoned batches; turn it off if agents label
            only the bot's mistakes (`deskbot.training.nightly.audit`).
        audit_min_examples: the audit needs this many new agent labels, and as many
            agent labels in the validation window.
        validation_share: the share of exported examples that are validation, never
            training: chosen by a hash of the text (`deskbot.training.nightly.validation`),
            so an example's side never changes from one night to the next.
        gate_window: the gate scores both models on the newest this many validation
            examples (a rolling window: no fixed set is selected on for ever).
        gate_min_examples: fewer validation examples than this: the night is not
            promoted (0 lets a night be promoted without validation evidence: tests only).
        gate_alpha: the accuracy check passes when the one-sided (1 - gate_alpha) lower
            bound of the candidate's accuracy gain over live (paired bootstrap over the
            validation rows, `f1_bootstrap` resamples) is at least -`accuracy_tolerance`.
        train_args: `TrainingArgs` fields for the night (over the config's `training`).
        seed: for the replay sample.
        generator: the generator's night (`generator_night.GeneratorNightSettings`
            fields: when it runs, how much it trains, what its gate demands); not part
            of an intents run's fingerprint.
        notices: what the job must tell about these settings (not a setting: `from_file`
            fills it in for an old `retrain.yaml`, the report shows it).
    """

    epochs: int = 2
    replay_ratio: float | None = None
    replay_min_per_intent: int = 2
    replay_max: int = 5000
    max_new: int = 20000
    min_new_examples: int = 1
    min_new_intent_examples: int = 10
    min_confidence: float = 0.8
    resolved_statuses: tuple[str, ...] = ("resolved",)
    accuracy_tolerance: float = 0.0
    f1_margin: float = 0.1
    f1_alpha: float | None = 0.05
    f1_bootstrap: int = 1000
    f1_min_support: int = 10
    oos_tolerance: float = 0.0
    audit_margin: float | None = 0.1
    audit_min_examples: int = 50
    validation_share: float = 0.2
    gate_window: int = 1000
    gate_min_examples: int = 50
    gate_alpha: float = 0.1
    train_args: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    generator: dict[str, Any] = field(default_factory=dict)
    notices: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        problems = [text for failed, text in self._checks() if failed]
        if problems:
            raise DataError("bad retrain settings: " + "; ".join(problems))
        self.resolved_statuses = tuple(self.resolved_statuses)

    def _checks(self) -> list[tuple[bool, str]]:
        """(failed, what to fix) for every rule the settings must meet."""
        replay_negative = (self.replay_ratio is not None and self.replay_ratio < 0) or min(
            self.replay_max, self.replay_min_per_intent
        ) < 0
        checks = [
            (self.epochs < 1, f"epochs must be at least 1, got {self.epochs}"),
            (replay_negative, "replay_ratio, replay_max and replay_min_per_intent must be >= 0"),
            (
                min(self.max_new, self.min_new_examples) < 1 or self.min_new_intent_examples < 2,
                "max_new and min_new_examples must be >= 1, min_new_intent_examples >= 2",
            ),
        ]
        checks += [
            (
                not 0 <= getattr(self, name) <= 1,
                f"{name} must be within 0..1, got {getattr(self, name)}",
            )
            for name in ("accuracy_tolerance", "f1_margin", "oos_tolerance")
        ]
        checks += [
            (
                self.f1_alpha is not None and not 0 < self.f1_alpha < 1,
                f"f1_alpha must be within (0, 1) or null, got {self.f1_alpha}",
            ),
            (
                self.f1_bootstrap < 100,
                f"f1_bootstrap must be at least 100, got {self.f1_bootstrap}",
            ),
            (
                not 0 < self.validation_share < 1 or not 0 < self.gate_alpha < 1,
                "validation_share and gate_alpha must be within (0, 1)",
            ),
            (
                self.gate_min_examples < 0 or self.gate_window < max(1, self.gate_min_examples),
                "gate_min_examples must be >= 0 and gate_window at least gate_min_examples",
            ),
        ]
        return checks

    def fingerprint(self) -> dict[str, Any]:
        """The settings that decide a run (everything but `notices`)."""
        return {
            k: v for k, v in dataclasses.asdict(self).items() if k not in ("notices", "generator")
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RetrainSettings:
        known = {f.name for f in dataclasses.fields(cls)} - {"notices"}
        unknown = set(raw) - known
        if unknown:
            raise DataError(f"unknown retrain setting(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**raw)

    @classmethod
    def from_file(cls, path: str | Path) -> RetrainSettings:
        """Read settings from a YAML mapping (e.g. `retrain.yaml` beside `deskbot.yaml`)."""
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"{path}: cannot read retrain settings ({exc})") from exc
        if not isinstance(raw, dict):
            raise DataError(f"{path}: expected a mapping of retrain settings")
        settings = cls.from_dict(raw)
        if not set(raw) & set(GATE_KEYS):
            settings.notices = (
                f"{path} predates the validation gate (none of {', '.join(GATE_KEYS)}): "
                f"nights are now gated on the validation stream ({settings.validation_share:.0%} "
                "of the exported examples, never trained on), and intents.test_data is "
                "scored and reported only, never decided on",
            )
        return settings


# The settings of the validation gate: a `retrain.yaml` with none of them predates it.
GATE_KEYS = ("validation_share", "gate_window", "gate_min_examples", "gate_alpha")
