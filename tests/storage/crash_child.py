"""Child process for the crash test: answers, submits and withdraws in a loop, printing the
number of each answer right after its transaction committed, until it is killed."""

from __future__ import annotations

import sys
from datetime import timedelta

from gates import usecases
from storage import Database
from tests.gates.conftest import OWNER, SUBMITTER
from tests.storage.scenarios import NOW, pipeline


def main(url: str, ref: str) -> None:
    database = Database(url)
    compiled = pipeline()
    n = 0
    while True:
        n += 1
        now = NOW + timedelta(seconds=n)
        usecases.answer(compiled, database.uow(), ref, "intake", {"problem": f"statement {n}"}, OWNER, now)
        print(n, flush=True)
        usecases.submit(compiled, database.uow(), ref, SUBMITTER, now)
        usecases.withdraw(database.uow(), ref, SUBMITTER, now)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
