"""Videos -> pose files (`actrec-etl extract`): PyAV decoding, pose backends, a tracker, the atomic writer.

Needs the optional extra `actrec[video]` (av, mediapipe); nothing here is imported by `actrec-etl --help`.
"""
