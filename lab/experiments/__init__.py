"""For instructors comparing variants: `lab sweep` (train and score a grid of configs, the
leaderboard) and `lab compare` (the Gradio side-by-side page).

Imports everything below it; nothing imports it but the CLI."""
