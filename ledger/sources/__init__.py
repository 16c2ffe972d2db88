"""Where observations come from: OpenAI and CSV files."""
