"""Conversation tests: `cases` reads the YAML a team writes, `runner` plays it against the
bot (in process or over HTTP), `report` says what differed (text, JSON, JUnit XML)."""
