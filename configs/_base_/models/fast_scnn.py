# Fast-SCNN (Poudel et al., 2019) from scratch, for CPU-scale runs:
# mmseg's model with plain BN (one process, no SyncBN), a softmax
# cross-entropy decode loss and no auxiliary heads, so CE and RSS configs
# train exactly the same network.
_base_ = 'mmseg::_base_/models/fast_scnn.py'

norm_cfg = dict(type='BN', requires_grad=True, momentum=0.01)
model = dict(
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(
        norm_cfg=norm_cfg,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None)
