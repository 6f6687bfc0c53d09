"""VLM keypoint affordances as dense rewards (KAGI); built in a later issue."""
