"""The same shop with its state in redis: INCR for the hit counter and for order ids, the cart as a redis
list keyed by the user's session id (Flask's signed cookie carries only the id)."""

import os
import secrets

import redis
from flask import Flask, jsonify, request, session


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY", "example-only")
    store = redis.Redis.from_url(os.environ["REDIS_URL"])

    @app.get("/")
    def index():
        return "redis shop\n"

    @app.post("/hit")
    def hit():
        return jsonify(hits=store.incr("hits"))

    @app.get("/hits")
    def read_hits():
        return jsonify(hits=int(store.get("hits") or 0))

    @app.post("/login")
    def login():
        session["user"] = request.form["user"]
        session["sid"] = secrets.token_hex(16)
        return jsonify(user=session["user"])

    @app.post("/cart/add")
    def add_to_cart():
        items = store.rpush(f"cart:{session['sid']}", request.form.get("item", "book"))
        return jsonify(user=session.get("user"), items=items)

    @app.post("/orders")
    def new_order():
        return jsonify(id=f"order-{store.incr('order-id')}"), 201

    @app.get("/greet")
    def greet():
        return f"<p>Hello, {request.args['name']}!</p>"

    return app
