"""CCAS scoring service: explainable QA scorecard from call audio, over HTTP (`ccas scoring-service`)."""
