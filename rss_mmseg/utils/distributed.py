"""CPU (gloo) process groups for ``tools/train.py`` and ``tools/test.py``.

mmengine 0.10.7 starts the process group of ``--launcher pytorch`` and
``--launcher slurm`` with ``torch.cuda.set_device(LOCAL_RANK)`` first and
wraps the model with ``device_ids=[LOCAL_RANK]``; both fail on a machine
without CUDA. :func:`setup_cpu_distributed` starts a gloo group itself
(mmengine then skips its own initialization) and gives DDP
``device_ids=None``. With CUDA it does nothing: mmengine's own path runs.
"""
import datetime
import os
import subprocess
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

__all__ = ['setup_cpu_distributed', 'slurm_dist_env']


def slurm_dist_env(port: Optional[int] = None) -> None:
    """Set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT`` from the variables ``srun`` gives each task, as
    mmengine's ``_init_dist_slurm`` does.

    The master is the first host of ``SLURM_NODELIST`` (``scontrol show
    hostnames``) unless ``MASTER_ADDR`` is set; the port is ``port``, else
    ``MASTER_PORT``, else 29500.
    """
    proc_id = int(os.environ['SLURM_PROCID'])
    ntasks = int(os.environ['SLURM_NTASKS'])
    local_rank = int(os.environ.get('SLURM_LOCALID', proc_id))
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        node_list = os.environ['SLURM_NODELIST']
        try:
            hosts = subprocess.run(
                ['scontrol', 'show', 'hostnames', node_list],
                capture_output=True,
                text=True,
                check=True).stdout.split()
        except (OSError, subprocess.CalledProcessError) as err:
            raise RuntimeError(
                f'--launcher slurm: `scontrol show hostnames {node_list}` '
                f'failed ({err}); set MASTER_ADDR to the first node') from err
        if not hosts:
            raise RuntimeError(f'--launcher slurm: no host in SLURM_NODELIST='
                               f'{node_list!r}; set MASTER_ADDR')
        os.environ['MASTER_ADDR'] = hosts[0]
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['LOCAL_RANK'] = str(local_rank)
    os.environ['RANK'] = str(proc_id)


def setup_cpu_distributed(cfg: Config) -> None:
    """Let ``--launcher pytorch`` (``tools/dist_train.sh``) and ``--launcher
    slurm`` (``tools/slurm_train.sh``) run without CUDA.

    Forces ``env_cfg.dist_cfg.backend='gloo'`` (nccl needs CUDA), starts the
    process group and sets ``model_wrapper_cfg.device_ids=None`` (CPU DDP).
    A no-op with CUDA or without a launcher.
    """
    if cfg.get('launcher') not in ('pytorch', 'slurm') or \
            torch.cuda.is_available():
        return
    import torch.distributed as torch_dist
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'gloo') != 'gloo':
        print_log(
            f"no CUDA: env_cfg.dist_cfg.backend={dist_cfg['backend']!r} "
            "replaced by 'gloo'",
            logger='current')
    dist_cfg['backend'] = 'gloo'
    if not torch_dist.is_initialized():
        kwargs = {
            k: v
            for k, v in dist_cfg.items() if k not in ('backend', 'port')
        }
        if kwargs.get('timeout') is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
        if cfg.launcher == 'slurm':
            slurm_dist_env(dist_cfg.get('port'))
        torch_dist.init_process_group(backend='gloo', **kwargs)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
