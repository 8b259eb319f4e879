"""The QA console: a server-rendered web application over the call tables, the recordings in S3 and the dead letters."""
