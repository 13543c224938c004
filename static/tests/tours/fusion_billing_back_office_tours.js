import { registry } from "@web/core/registry";

// Pick a record in a many2one field (never its "Create" or "Search More" options).
function pick(field, text, scope = "") {
    return [
        {
            content: `Search ${text} in ${field}`,
            trigger: `${scope} .o_field_widget[name='${field}'] input`,
            run: `edit ${text}`,
        },
        {
            content: `Pick ${text}`,
            trigger: `.o-autocomplete--dropdown-item:not(.o_m2o_dropdown_option) a:contains('${text}')`,
            run: "click",
        },
    ];
}

function menu(xmlid) {
    return {
        content: `Open ${xmlid}`,
        trigger: `[data-menu-xmlid='fusion_billing.${xmlid}']`,
        run: "click",
    };
}

const save = [
    { content: "Save", trigger: ".o_form_button_save:not(.modal *)", run: "click" },
    { content: "Saved", trigger: ".o_form_view:not(.modal *) .o_form_saved" },
];

// A billing admin sets up a new app from nothing: service and metric, a plan
// whose tiered charge is added before the plan is first saved, a customer, a
// subscription activated, and the app's API key.
registry.category("web_tour.tours").add("fusion_billing_admin_tour", {
    url: "/odoo/action-fusion_billing.fusion_billing_service_action",
    steps: () => [
        { content: "New service", trigger: ".o_list_button_add", run: "click" },
        {
            content: "Name it",
            trigger: ".o_field_widget[name='name'] input",
            run: "edit Tour Admin Cloud",
        },
        {
            content: "Its code",
            trigger: ".o_field_widget[name='code'] input",
            run: "edit fb_tour_admin",
        },
        { content: "Metrics tab", trigger: "a.nav-link:contains('Metrics')", run: "click" },
        {
            content: "Add a metric",
            trigger: "div[name='metric_ids'] .o_field_x2many_list_row_add a",
            run: "click",
        },
        {
            content: "Metric code",
            trigger: "div[name='metric_ids'] .o_data_row [name='code'] input",
            run: "edit tour_calls",
        },
        {
            content: "Metric name",
            trigger: "div[name='metric_ids'] .o_data_row [name='name'] input",
            run: "edit Tour Calls",
        },
        ...save,
        menu("menu_fusion_billing_configuration"),
        menu("menu_fusion_billing_plans"),
        { content: "New plan", trigger: ".o_list_button_add", run: "click" },
        {
            content: "Plan name",
            trigger: ".o_field_widget[name='name'] input",
            run: "edit Tour Scale",
        },
        ...pick("service_id", "Tour Admin Cloud"),
        {
            content: "Plan code",
            trigger: ".o_field_widget[name='code'] input",
            run: "edit fb_tour_scale",
        },
        {
            content: "Add a charge before saving the plan",
            trigger: "div[name='charge_ids'] .o_field_x2many_list_row_add a",
            run: "click",
        },
        ...pick("metric_id", "Tour Calls", ".modal"),
        ...pick("product_id", "Tour Usage", ".modal"),
        {
            content: "Graduated tiers",
            trigger: ".modal .o_field_widget[name='charge_model'] input[data-value='graduated']",
            run: "click",
        },
        {
            content: "First tier",
            trigger: ".modal div[name='tier_ids'] .o_field_x2many_list_row_add a",
            run: "click",
        },
        {
            content: "Up to 100",
            trigger: ".modal div[name='tier_ids'] .o_data_row [name='up_to'] input",
            run: "edit 100",
        },
        {
            content: "At 0.10",
            trigger: ".modal div[name='tier_ids'] .o_data_row [name='unit_price'] input",
            run: "edit 0.1",
        },
        {
            content: "Second tier",
            trigger: ".modal div[name='tier_ids'] .o_field_x2many_list_row_add a",
            run: "click",
        },
        {
            content: "And above at 0.05",
            trigger:
                ".modal div[name='tier_ids'] .o_data_row:eq(1) [name='unit_price'] input",
            run: "edit 0.05",
        },
        {
            content: "The charge reads as a price list",
            trigger: ".modal .o_field_widget[name='pricing_summary']:contains('first 100 at')",
        },
        { content: "Save the charge", trigger: ".modal .o_form_button_save", run: "click" },
        {
            content: "The charge is on the unsaved plan",
            trigger: "div[name='charge_ids'] .o_data_row:contains('first 100 at')",
        },
        ...save,
        menu("menu_fusion_billing_configuration"),
        menu("menu_fusion_billing_customers"),
        { content: "New customer", trigger: ".o_list_button_add", run: "click" },
        ...pick("partner_id", "Tour Admin Customer"),
        ...pick("service_id", "Tour Admin Cloud"),
        {
            content: "The app's customer id",
            trigger: ".o_field_widget[name='external_ref'] input",
            run: "edit cus_tour_admin",
        },
        ...save,
        menu("menu_fusion_billing_subscriptions"),
        { content: "New subscription", trigger: ".o_list_button_add", run: "click" },
        ...pick("service_id", "Tour Admin Cloud"),
        ...pick("partner_id", "Tour Admin Customer"),
        ...pick("plan_id", "Tour Scale"),
        {
            content: "The app's subscription id",
            trigger: ".o_field_widget[name='external_ref'] input",
            run: "edit sub_tour_admin",
        },
        ...save,
        { content: "Activate", trigger: "button[name='action_activate']", run: "click" },
        {
            content: "Active: it can be rated now",
            trigger: "button[name='action_rate_now']",
        },
        menu("menu_fusion_billing_configuration"),
        menu("menu_fusion_billing_services"),
        {
            content: "Open the service",
            trigger: ".o_data_row td:contains('Tour Admin Cloud')",
            run: "click",
        },
        {
            content: "Generate its API key",
            trigger: "button[name='action_generate_api_key']",
            run: "click",
        },
        {
            content: "Where the key is used",
            trigger: ".modal .o_field_widget[name='name'] input",
            run: "edit Tour admin key",
        },
        { content: "Generate", trigger: ".modal button[name='action_generate']", run: "click" },
        {
            content: "Close the key dialog",
            trigger: ".modal button:contains('Done')",
            run: "click",
        },
        {
            content: "The key generation is in the chatter",
            trigger: ".o-mail-Message:contains('Tour admin key')",
        },
    ],
});

// An accountant rates a subscription now and reads the draft invoice.
registry.category("web_tour.tours").add("fusion_billing_accountant_tour", {
    url: "/odoo/action-fusion_billing.fusion_billing_subscription_action",
    steps: () => [
        {
            content: "Open the subscription",
            trigger: ".o_data_row td:contains('Tour Rate Co')",
            run: "click",
        },
        { content: "Rate now", trigger: "button[name='action_rate_now']", run: "click" },
        {
            content: "Its draft invoice exists",
            trigger: "button[name='action_view_invoices'] .o_stat_value:contains('1')",
            run: "click",
        },
        {
            content: "Open the draft",
            trigger: ".o_data_row:contains('Tour Rate Co') td[name='name']",
            run: "click",
        },
        {
            content: "The usage line names the metric",
            trigger: "div[name='invoice_line_ids'] .o_data_row:contains('Tour Calls')",
        },
    ],
});

// Resolving a delta asks why, then shows it resolved.
registry.category("web_tour.tours").add("fusion_billing_resolve_delta_tour", {
    url: "/odoo/action-fusion_billing.fusion_billing_reconciliation_action",
    steps: () => [
        {
            content: "Open the delta",
            trigger: ".o_data_row td:contains('Tour Delta Co')",
            run: "click",
        },
        { content: "Mark Resolved", trigger: "button[name='action_resolve']", run: "click" },
        {
            content: "Say why",
            trigger: ".modal .o_field_widget[name='note'] textarea",
            run: "edit The app billed the setup fee in advance.",
        },
        {
            content: "Confirm",
            trigger: ".modal button[name='action_resolve']",
            run: "click",
        },
        {
            content: "Resolved: it can be reopened",
            trigger: ".o_form_view:not(.modal *) button[name='action_reopen']",
        },
    ],
});

// A billing user opens Usage Analysis from the menu: the graph, then the pivot
// by metric; then the invoiced revenue.
registry.category("web_tour.tours").add("fusion_billing_analysis_tour", {
    url: "/odoo/action-fusion_billing.fusion_billing_subscription_action",
    steps: () => [
        menu("menu_fusion_billing_reporting"),
        menu("menu_fusion_billing_usage_analysis"),
        { content: "The usage graph", trigger: ".o_graph_renderer canvas" },
        { content: "Pivot view", trigger: "button.o_switch_view.o_pivot", run: "click" },
        {
            content: "A row per metric",
            trigger: ".o_pivot th:contains('Tour Analysis Calls')",
        },
        menu("menu_fusion_billing_reporting"),
        menu("menu_fusion_billing_revenue_analysis"),
        { content: "The revenue pivot", trigger: ".o_pivot_view .o_pivot" },
    ],
});
