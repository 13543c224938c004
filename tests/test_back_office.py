# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo.tests import HttpCase, new_test_user, tagged

from ..models.fusion_billing_service import API_KEY_SCOPE


@tagged("post_install", "-at_install")
class TestApiKeyFlow(HttpCase):
    """The API key flow as a billing manager clicks it in the web client."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.manager = new_test_user(
            cls.env,
            login="fb_tour_manager",
            password="fb_tour_manager",
            groups="base.group_user,fusion_billing.group_fusion_billing_manager",
        )
        cls.service = cls.env["fusion.billing.service"].create(
            {"name": "Tour Cloud", "code": "fb_tour_cloud"}
        )

    def test_generate_key_from_service_form(self):
        self.start_tour(
            "/odoo/action-fusion_billing.fusion_billing_service_action",
            "fusion_billing_api_key_tour",
            login="fb_tour_manager",
        )
        keys = (
            self.env["res.users.apikeys"]
            .sudo()
            .search([("user_id", "=", self.service.user_id.id)])
        )
        self.assertEqual(keys.mapped("name"), ["Tour production key"])
        self.assertEqual(keys.scope, API_KEY_SCOPE)
        # The form lists the key to its manager, without the secret.
        service = self.service.with_user(self.manager)
        self.assertEqual(service.api_key_ids.mapped("name"), ["Tour production key"])
