"""The API's routes, one `APIRouter` per job: `chat` (sessions, messages, history,
feedback, handoff, erasure), `rasa` (Rasa's REST channel) and `ops` (probes, metrics)."""
