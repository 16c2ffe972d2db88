"""ftledger: cost and usage accounting for fine-tuned OpenAI models.

Importing the package stays cheap: heavy third-party modules (openai, tiktoken,
apscheduler, alembic, rich) are imported inside the functions that need them.
"""

__version__ = "0.1.0"
