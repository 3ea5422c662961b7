"""Write the memory reference export (trials.csv, participants.csv) in this folder.

A simulated learn-then-recognise study: 32 participants over 4 lists, 16 identities; each
participant studies 8 (4 in their real headshot, 4 in the AI one) with a rating filler block
between, then says of all 16 new photos whether they met the person. Said "old" follows a
logistic model with participant and identity intercepts: studied real higher than studied AI,
foils low. Participant s-0032 stops in the test phase (partial). Kept fixed in the repository;
rerun only to change the data (then rerun reference.R too):

    .venv/bin/python -m tests.data.memory.make
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

from survey.design import IdentityInfo, list_conditions, memory_roles

HERE = Path(__file__).resolve().parent
N_PARTICIPANTS, N_IDENTITIES, N_LISTS = 32, 16, 4
LOGIT = {"real": 1.2, "ai": 0.4, "foil": -1.3}


def main() -> None:
    rng = random.Random(20261204)
    identities = [
        IdentityInfo(code=f"P{k:03d}", gender=("woman", "man")[k % 2], age_band="")
        for k in range(1, N_IDENTITIES + 1)
    ]
    identity_effect = {i.code: rng.gauss(0, 0.5) for i in identities}
    trials, participants = [], []
    for p in range(1, N_PARTICIPANTS + 1):
        pid, list_index = f"s-{p:04d}", (p - 1) % N_LISTS
        label = "ABCD"[list_index]
        roles = memory_roles(identities, list_index, N_LISTS)
        shown = list_conditions(identities, list_index, N_LISTS)
        person = rng.gauss(0, 0.7)
        targets = [c for c, r in roles.items() if r != "foil"]
        rng.shuffle(targets)
        position = 0

        def row(block, task, identity, condition, measure, value, right, rt, studied="",
                pid=pid, label=label):  # fmt: skip
            trials.append(
                {
                    "study": "memory-sim",
                    "participant": pid,
                    "list": label,
                    "trial": position,  # noqa: B023 - the trial being written
                    "block": block,
                    "task": task,
                    "identity": identity,
                    "condition": condition,
                    "probe": identity if task == "recognise" else "",
                    "is_match": "",
                    "measure": measure,
                    "value": value,
                    "correct": right,
                    "rt_ms": rt,
                    "attention_check": 0,
                    "rt_flag": "",
                    "simulated": 0,
                    "studied": studied,
                }
            )

        for code in targets:
            position += 1
            row("study", "learn", code, roles[code], "seen", 1, "", round(rng.uniform(900, 3000)))
        for code in sorted(roles, key=lambda c: rng.random()):
            position += 1
            row("filler", "rate", code, shown[code], "trust", rng.randint(1, 7), "",
                round(rng.uniform(700, 2500)))  # fmt: skip
        test = sorted(roles, key=lambda c: rng.random())
        stop = 9 if p == N_PARTICIPANTS else len(test)
        for code in test[:stop]:
            position += 1
            role = roles[code]
            eta = LOGIT[role] + person + identity_effect[code]
            said_old = int(rng.random() < 1 / (1 + math.exp(-eta)))
            studied = int(role != "foil")
            condition = role if studied else ""
            rt = round(rng.uniform(800, 2600))
            row("test", "recognise", code, condition, "old", said_old,
                int(said_old == studied), rt, studied)  # fmt: skip
            row("test", "recognise", code, condition, "confidence", rng.randint(1, 5), "", "",
                studied)  # fmt: skip
        participants.append(
            {
                "participant": pid,
                "list": label,
                "status": "partial" if p == N_PARTICIPANTS else "completed",
                "started_at": "2026-12-01T10:00:00Z",
                "completed_at": "" if p == N_PARTICIPANTS else "2026-12-01T10:15:00Z",
                "duration_s": "" if p == N_PARTICIPANTS else 900,
                "device": "desktop",
                "source": "link",
                "attention_passed": 0,
                "attention_total": 0,
            }
        )
    for name, rows in (("trials.csv", trials), ("participants.csv", participants)):
        with open(HERE / name, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
