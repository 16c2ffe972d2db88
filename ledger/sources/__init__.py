"""Where observations come from: OpenAI (or its loopback sandbox) and CSV files."""
