"""Regenerate ``classifier_heldout.jsonl``: labelled requests for the task classifier's held-out
accuracy test. Phrasings are written here, distinct from the task sets and from the training
examples in ``proxy/pipeline/data``. Run: ``python tests/data/make_classifier_heldout.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NAMES = ["Aiko", "Bruno", "Chloe", "Dmitri", "Esme", "Farid", "Greta", "Hugo", "Ines", "Kofi"]
ITEMS = ["marbles", "stickers", "oranges", "tickets", "coins", "cupcakes", "stamps", "bricks"]

MATH = [
    "{a} had {x} {i}. She gave {y} to a friend and then bought {z} more. How many {i} does {a} have now?",
    "A car uses {y} litres of fuel per 100 km. How many litres does it need for a {x}0 km trip?",
    "{a} earns ${x} per hour and works {y} hours a day for {z} days. What does {a} earn in total?",
    "If {y} workers can paint a fence in {z} hours, how long would it take {x} workers at the same rate?",
    "The price of a lamp went from ${x} to ${w}. By what percentage did the price change?",
    "A class of {x} students splits into teams of {y}. How many full teams are there, and how many students are left over?",
    "Calculate {x} * {y} - {z}.",
    "What do you get if you add {x}, {y} and {z}, then divide by 3?",
    "A garden bed is {y} m by {z} m. Soil costs ${x} per square metre. What does the soil cost?",
    "{a} runs {y} km every morning. How far does {a} run in {z} weeks?",
    "Each bus seats {x} passengers. How many buses are needed for {w} people?",
    "A pizza is cut into {y} slices and {a} eats {z} of them. What fraction of the pizza is left?",
]
MC_Q = [
    ("What is the boiling point of water at sea level?", ["90 °C", "100 °C", "110 °C", "120 °C"]),
    ("Which gas do plants absorb from the air?", ["oxygen", "nitrogen", "carbon dioxide", "helium"]),
    ("Which word is an antonym of 'ancient'?", ["old", "modern", "historic", "aged"]),
    ("Which country has the largest population?", ["India", "Canada", "Brazil", "Norway"]),
    ("How many sides does a hexagon have?", ["five", "six", "seven", "eight"]),
    ("Which instrument has 88 keys?", ["violin", "flute", "piano", "drum"]),
    ("What is {x} plus {y}?", ["{s}", "{t}", "{u}", "{v}"]),
    ("Which of these numbers is prime?", ["21", "27", "29", "33"]),
    ("Who painted the Mona Lisa?", ["Van Gogh", "Leonardo da Vinci", "Picasso", "Monet"]),
    ("What is the freezing point of water in Fahrenheit?", ["0", "32", "50", "100"]),
]
MC_FMT = [
    "{q}\nA) {o0}\nB) {o1}\nC) {o2}\nD) {o3}",
    "{q}\n(A) {o0}\n(B) {o1}\n(C) {o2}\n(D) {o3}\nReply with the letter only.",
    "Quiz time! {q}\na. {o0}\nb. {o1}\nc. {o2}\nd. {o3}",
    "Answer this multiple-choice question.\n{q}\nA: {o0}\nB: {o1}\nC: {o2}\nD: {o3}",
    "{q} Options: (A) {o0}, (B) {o1}, (C) {o2}, (D) {o3}.",
]
SUM_FMT = [
    "Summarize the passage below in one paragraph.\n\n{p}",
    "Could you give me the gist of this?\n{p}",
    "Boil this down to three bullet points:\n{p}",
    "I don't have time to read this. What's the short version?\n\n{p}",
    "Write a one-sentence summary of the following report.\n{p}",
    "Please produce a concise summary:\n{p}",
]
PASSAGES = [
    "The museum reopened after a two-year renovation. Visitors can now see a new wing devoted to "
    "textiles. Entry remains free on Sundays, and the cafe has moved to the roof.",
    "{a} founded a small bakery in {x}9. It now employs {y} people and ships bread to three "
    "towns. Last winter a fire closed it for a month, but sales recovered quickly.",
    "The committee reviewed {y} proposals for the new bridge. Cost and traffic impact were the "
    "main criteria. The winning design uses recycled steel and opens in {x}0 days.",
    "Researchers tracked {x} sea turtles with satellite tags. Most travelled more than {y}00 km. "
    "The data suggest warmer water is shifting their feeding grounds north.",
    "Our support team answered {x}0 tickets last week. Response times improved by {y} percent "
    "after the new chatbot launched, though customers still prefer email for billing issues.",
    "The local team lost the final {y} to {z}. Their captain was injured in the first half. "
    "Fans nonetheless celebrated the best season in a decade.",
]
GENERAL = [
    "Good evening! What's new with you?", "Could you suggest a movie for a rainy Sunday?",
    "How do I get better at public speaking?", "Write a sonnet about a lighthouse keeper.",
    "What is the difference between empathy and sympathy?", "Help me name my fantasy novel's hero.",
    "Is coffee bad for you?", "How do I boil an egg so the yolk stays soft?",
    "What programming language should I learn first for data science?",
    "Explain quantum entanglement like I'm five.", "Write a tweet announcing our product launch.",
    "What are some icebreaker questions for a team meeting?", "Why do leaves change colour in autumn?",
    "How can I stop procrastinating?", "Give me a packing list for a beach holiday.",
    "What's the etiquette for tipping in Japan?", "Draft a message apologising for missing a call.",
    "Tell me a fun fact about space.", "How do I remove a red wine stain from a carpet?",
    "Can you describe how photosynthesis works?", "Recommend a board game for four players.",
    "What does a product manager do all day?", "Write a bedtime story about a sleepy dragon.",
    "How should I prepare for a marathon?", "What's the origin of Halloween?",
    "Explain what an API is to a non-technical friend.", "How do I say thank you in Japanese?",
    "Write a regex that matches an email address.", "What are the benefits of meditation?",
    "Please proofread: Their going to the park tomorow.", "How do I reset my router?",
    "Suggest some names for a bakery.", "What is the theory of relativity about?",
    "How do I grow tomatoes on a balcony?", "Write a short speech for a retirement party.",
    "What should I consider when adopting a dog?", "Who are you and what can you do?",
    "Explain the difference between stocks and bonds.", "Write a JavaScript function to debounce a callback.",
    "What are common mistakes new managers make?", "Describe a perfect summer day.",
    "How do I keep my houseplants alive in winter?", "What's the weather usually like in Iceland in June?",
    "Give me a pep talk, I'm nervous about my driving test.", "How is cheese made?",
    "Write an out-of-office reply for next week.", "What makes a good logo?",
    "How do I convert a list to a set in Python?", "Tell me about the life of Marie Curie.",
    "What are the main causes of inflation?", "Brainstorm themes for a company picnic.",
    "How do I write a haiku?", "Why is sleep important for memory?",
    "Which is healthier, brown rice or white rice?", "Compose a short jingle about recycling.",
    "How do volcanoes form?", "What are the rules of pickleball?",
    "Create a workout playlist with upbeat songs.", "How can I make my resume stand out?",
    "What's the best way to clean a cast iron pan?",
]


def build(seed: int = 7) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, str]] = []

    def fill(text: str) -> str:
        x, y, z = (int(v) for v in rng.integers(2, 60, size=3))
        vals = {"a": NAMES[int(rng.integers(len(NAMES)))], "i": ITEMS[int(rng.integers(len(ITEMS)))],
                "x": x, "y": y, "z": z, "w": x * 3 + y, "s": x + y, "t": x + y + 1, "u": x + y - 2,
                "v": x * y}
        return text.format(**vals)

    for k in range(72):
        rows.append({"text": fill(MATH[k % len(MATH)]), "task": "math"})
    for k in range(55):
        q, opts = MC_Q[k % len(MC_Q)]
        order = rng.permutation(4)
        parts = {f"o{j}": opts[int(order[j])] for j in range(4)}
        rows.append({"text": fill(MC_FMT[k % len(MC_FMT)].format(q=q, **parts)),
                     "task": "multiple_choice"})
    for k in range(48):
        passage = fill(PASSAGES[k % len(PASSAGES)])
        rows.append({"text": SUM_FMT[k % len(SUM_FMT)].format(p=passage), "task": "summarize"})
    rows += [{"text": g, "task": "general"} for g in GENERAL]
    order = rng.permutation(len(rows))
    return [rows[int(i)] for i in order]


if __name__ == "__main__":
    out = Path(__file__).with_name("classifier_heldout.jsonl")
    with out.open("w", encoding="utf-8") as fh:
        for row in build():
            fh.write(json.dumps(row) + "\n")
