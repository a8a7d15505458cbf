"""The summarizer: its own process, consuming SUMMARIZE commands and writing summaries back."""
