"""Bolt listeners, one module per Slack surface. Each is thin: ack, parse, one use case, reply.

Listeners receive ``Services`` through bound methods (Bolt fills arguments by name and an
unknown name silently becomes None, so dependencies never travel that way).
"""
