"""`ganslim edit --generator CKPT [--encoder CKPT] [--project-steps N] [--directions FILE] [--port 7860]
[--host 127.0.0.1]`: the interactive editor, a local web page (:mod:`ganslim.editing.web`)."""

from __future__ import annotations

import argparse

from ganslim.cli.directions import DEFAULT_COUNT

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "edit", help="edit a StyleGAN2 generator's images in a local web page, previewed by Anycost sub-generators",
        description="Serve a local web page to edit images of a StyleGAN2 generator: pick a seed (or upload an image, "
                    "with --encoder and/or --project-steps), move a slider per direction to preview the edit with a cheap sub-generator, "
                    "finalize it with the full generator and download the PNG.")
    parser.add_argument("--generator", required=True, help="StyleGAN2 generator checkpoint, or a folder holding one")
    parser.add_argument("--encoder", default=None, help="encoder checkpoint (ganslim train encoder): enables uploads")
    parser.add_argument("--project-steps", type=int, default=0, metavar="N",
                        help="refine each upload's W+ by N steps of ganslim project (from the encoder's W+, or "
                             "without --encoder from the mean W); default 0: the encoder's W+ as it is")
    parser.add_argument("--directions", default=None, metavar="FILE",
                        help="directions file from ganslim directions (default: SeFa directions computed at start)")
    parser.add_argument("--count", type=int, default=None,
                        help=f"SeFa directions computed at start when no --directions is given (default "
                             f"{DEFAULT_COUNT})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; the page has no login)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860; 0: any free one)")
    parser.add_argument("--preview-ms", type=float, default=None, metavar="MS",
                        help="latency target of the default preview (default: a fifth of the full generator's time, "
                             "measured at start, and at least 50 ms)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ganslim.apps.generate import latent_generator
    from ganslim.checkpoints import load_generator
    from ganslim.editing.directions import load_directions, sefa_directions, sefa_names
    from ganslim.editing.projection import load_inversion
    from ganslim.editing.web import Editor, bind, create_app, uvicorn_server
    from ganslim.editing.web.editor import check_editable
    from ganslim.errors import GanslimError

    if args.directions is not None and args.count is not None:
        raise GanslimError("--count sets how many SeFa directions to compute without --directions: drop one of them")
    loaded = load_generator(args.generator)
    generator = latent_generator(loaded.model, f"checkpoint '{loaded.path}'")
    check_editable(generator)
    if args.directions is not None:
        names, directions = load_directions(args.directions, generator)
    else:
        count = DEFAULT_COUNT if args.count is None else args.count
        directions = sefa_directions(generator, count)
        names = sefa_names(count)
    invert = load_inversion(generator, args.encoder, args.project_steps)
    with bind(args.host, args.port) as sock:
        print(f"timing {loaded.arch}'s sub-generators ({loaded.path}) ...", flush=True)
        editor = Editor(generator, names, directions, invert, args.preview_ms)
        preview = editor.default_preview
        print(f"full generator {editor.latencies_ms[editor.full]:.1f} ms; default preview {preview.resolution} px "
              f"at width {preview.ratio:g}, {editor.latencies_ms[preview]:.1f} ms (target {editor.target_ms:.1f} ms)")
        if args.host not in LOOPBACK:
            print(f"warning: listening on {args.host}, reachable from other machines; the editor has no login")
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"serving the editor on http://{host}:{sock.getsockname()[1]} (Ctrl-C stops it)", flush=True)
        uvicorn_server(create_app(editor, f"ganslim editor: {loaded.path.name}")).run(sockets=[sock])
