"""Pictures of runs and policies: PNG figures, rollout frames and videos, and ``metarl render``'s rollouts.

``plots`` draws the learning and adaptation curves, ``video`` turns rollouts into frames and GIF/MP4 files,
and ``render`` runs a policy before and after adaptation for them. May import the core below it (collection,
maths); only the app (``metarl.cli``) and the evaluation's figure (``adaptation.png``) import it.
"""
