"""The support WebSockets: a customer joins only with a real conversation token; the console needs the support role."""
from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from apps.support.live import conversation_push
from apps.support.models import Conversation, Message
from config.asgi import application
from services.support.knowledge import kb_ensure

pytestmark = pytest.mark.django_db(transaction=True)


def communicator(path: str, user) -> WebsocketCommunicator:  # noqa: ANN001
    found = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")])
    found.scope["user"] = user
    return found


def test_a_customer_hears_agent_replies_on_their_token_but_never_notes(role_users) -> None:  # noqa: ANN001
    conversation = Conversation.objects.create(kb=kb_ensure(name="default"))
    note = Message.objects.create(conversation=conversation, sender=Message.NOTE, text="internal")
    reply = Message.objects.create(conversation=conversation, sender=Message.AGENT, text="Hello from an agent")

    async def scenario() -> None:
        customer = communicator(f"/ws/support/chat/{conversation.token}/", AnonymousUser())
        assert (await customer.connect(timeout=10))[0]
        assert (await customer.receive_json_from(timeout=10))["event"] == "hello"
        await sync_to_async(conversation_push)(conversation=conversation, messages=[note, reply])
        message = await customer.receive_json_from(timeout=10)
        assert message["event"] == "message" and message["data"]["text"] == "Hello from an agent"
        assert await customer.receive_nothing(timeout=0.5)  # the note never reaches the customer
        await customer.disconnect()

    async_to_sync(scenario)()


def test_unknown_tokens_and_people_without_the_support_role_are_refused(role_users) -> None:  # noqa: ANN001
    async def scenario() -> None:
        stranger = communicator("/ws/support/chat/guessed-token/", AnonymousUser())
        connected, code = await stranger.connect(timeout=10)
        assert not connected and code == 4404
        for user, expected in ((AnonymousUser(), 4401), (role_users["risk_analyst"], 4403)):
            console = communicator("/ws/support/console/", user)
            connected, code = await console.connect(timeout=10)
            assert not connected and code == expected
        agent = communicator("/ws/support/console/", role_users["support_agent"])
        assert (await agent.connect(timeout=10))[0]
        await agent.disconnect()

    async_to_sync(scenario)()
