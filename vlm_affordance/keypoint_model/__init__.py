"""
The default KAGI affordance model: a small language-conditioned keypoint heatmap network.

It is trained on simulator scenes labelled from privileged state
(:mod:`.data`), reads RGB-D views and an instruction (:mod:`.language`,
:mod:`.model`) and answers through the same ask/parse path as the VLM backends
(:mod:`visual_rl_stack.vlm_affordance.backends.keypoint_net`).
"""
