"""A small shop written the way many first versions are: a hit counter in a module global and the cart in
a server-side session kept in the process's memory (Flask-Session over cachelib's SimpleCache).

Both work on a laptop (one process) and break once the app runs under several workers or instances.
"""

import logging

from cachelib import SimpleCache
from flask import Flask, jsonify, request, session
from flask_session import Session

log = logging.getLogger("shop")
hits = 0


def create_app():
    app = Flask(__name__)
    app.config.update(SECRET_KEY="example-only", SESSION_TYPE="cachelib",
                      SESSION_CACHELIB=SimpleCache(threshold=100_000, default_timeout=3600))
    Session(app)

    @app.get("/")
    def index():
        return "naive shop\n"

    @app.post("/hit")
    def hit():
        global hits
        seen = hits + 1
        log.debug("hit %d from %s", seen, request.remote_addr)
        hits = seen
        return jsonify(hits=hits)

    @app.get("/hits")
    def read_hits():
        return jsonify(hits=hits)

    @app.post("/login")
    def login():
        session["user"] = request.form["user"]
        session["cart"] = []
        return jsonify(user=session["user"])

    @app.post("/cart/add")
    def add_to_cart():
        cart = session.setdefault("cart", [])
        cart.append(request.form.get("item", "book"))
        session.modified = True
        return jsonify(user=session.get("user"), items=len(cart))

    return app
