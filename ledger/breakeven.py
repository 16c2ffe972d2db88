"""When does a fine-tune pay for itself? Requests until short prompts repay the training fee.

Per request the base model costs base_prompt × input + output × output at base prices;
the fine-tuned model costs ft_prompt × input + output × output at fine-tuned prices.
If the fine-tuned request is cheaper by `saving`, the fee is repaid after
ceil(training_cost / saving) requests. All in integer pico-USD: exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ledger.errors import PricingError
from ledger.money import from_pico, per_token_pico, to_pico
from ledger.pricebook import PriceBook, unknown_model


@dataclass(frozen=True)
class Breakeven:
    model: str
    base_model: str
    price_date: date
    base_request_cost: Decimal
    ft_request_cost: Decimal
    saving_per_request: Decimal
    training_cost: Decimal
    requests: int | None  # None: the fine-tuned model never becomes cheaper

    def as_dict(self) -> dict[str, Any]:
        from ledger.estimate import exact_str

        return {
            "model": self.model,
            "base_model": self.base_model,
            "price_date": self.price_date.isoformat(),
            "base_request_cost": exact_str(self.base_request_cost),
            "ft_request_cost": exact_str(self.ft_request_cost),
            "saving_per_request": exact_str(self.saving_per_request),
            "training_cost": exact_str(self.training_cost),
            "breakeven_requests": self.requests,
        }


def breakeven(
    book: PriceBook,
    model: str,
    *,
    base_prompt_tokens: int,
    ft_prompt_tokens: int,
    output_tokens: int,
    training_cost: Decimal,
    on: date,
) -> Breakeven:
    resolved = book.resolve(model)
    if resolved.spec is None:
        raise unknown_model(book, model)
    base = book.base_price_at(model, on)
    tuned = book.price_at("ft:" + resolved.base_model, on)
    if base is None or tuned is None:
        raise PricingError(f"{resolved.base_model} has no base and fine-tuned prices on {on}")
    base_cost = base_prompt_tokens * per_token_pico(base.input) + output_tokens * per_token_pico(
        base.output
    )
    ft_cost = ft_prompt_tokens * per_token_pico(tuned.input) + output_tokens * per_token_pico(
        tuned.output
    )
    saving = base_cost - ft_cost
    fee = to_pico(training_cost)
    requests = None if saving <= 0 else -(-fee // saving)  # ceiling division
    return Breakeven(
        model=model,
        base_model=resolved.base_model,
        price_date=on,
        base_request_cost=from_pico(base_cost),
        ft_request_cost=from_pico(ft_cost),
        saving_per_request=from_pico(saving),
        training_cost=training_cost,
        requests=requests,
    )
