"""A local Slack for tests and the playground."""
