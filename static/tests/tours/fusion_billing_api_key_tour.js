import { registry } from "@web/core/registry";

// A billing manager opens a service, generates an API key and sees it once.
registry.category("web_tour.tours").add("fusion_billing_api_key_tour", {
    url: "/odoo/action-fusion_billing.fusion_billing_service_action",
    steps: () => [
        {
            content: "Open the service",
            trigger: ".o_data_row td:contains('Tour Cloud')",
            run: "click",
        },
        {
            content: "Generate an API key",
            trigger: "button[name='action_generate_api_key']",
            run: "click",
        },
        {
            content: "Describe where the key is used",
            trigger: ".modal .o_field_widget[name='name'] input",
            run: "edit Tour production key",
        },
        {
            content: "Generate it",
            trigger: ".modal button[name='action_generate']",
            run: "click",
        },
        {
            content: "The key is shown once",
            trigger: ".modal:contains('Copy the service') .o_field_widget[name='key']:not(:empty)",
        },
        {
            content: "Close the dialog",
            trigger: ".modal button:contains('Done')",
            run: "click",
        },
        {
            content: "Back on the service form",
            trigger: ".o_form_view:not(.modal .o_form_view) .o_field_widget[name='code']",
        },
    ],
});
